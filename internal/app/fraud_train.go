package app

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/fraud"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// FraudTrain configures `bytebasket batch fraud-train`.
type FraudTrain struct {
	// Orders placed in [To-Days, To) train the model; To defaults to now less LabelWindow,
	// so every order had its full window for a chargeback to come.
	To          time.Time
	Days        int
	LabelWindow time.Duration
	Train       riskmodel.TrainConfig
	Out         string // a file to write the model to (JSON), "" for none
	Publish     bool   // publish it to fraud-rules: every fraud instance scores with it
}

// BatchFraudTrain builds the training set over the lake on the configured engine (features
// and chargeback labels: batch.FraudFeaturesJob), fits the model, prints how it did on the
// held-out newest orders, and writes or publishes it.
func BatchFraudTrain(ctx context.Context, cfg config.Config, ft FraudTrain, out io.Writer) (*pb.FraudModel, error) {
	if ft.Days <= 0 || ft.LabelWindow <= 0 {
		return nil, fmt.Errorf("batch fraud-train: --days %d and --label-window %s must be positive", ft.Days, ft.LabelWindow)
	}
	to := ft.To
	if to.IsZero() {
		to = time.Now().Add(-ft.LabelWindow)
	}
	from := to.Add(-time.Duration(ft.Days) * 24 * time.Hour)
	eng, err := openEngine(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	if err := eng.RegisterViews(ctx); err != nil {
		return nil, err
	}
	lookback, err := profileRetention(cfg)
	if err != nil {
		return nil, err
	}
	ff := batch.FraudFeatures{From: from, To: to, Lookback: lookback, LabelWindow: ft.LabelWindow}
	xs, err := ff.Examples(ctx, eng)
	if err != nil {
		return nil, err
	}
	examples := make([]riskmodel.Example, len(xs))
	for i, x := range xs {
		examples[i] = x.Example
	}
	m, err := riskmodel.Train(examples, ft.Train)
	if err != nil {
		return nil, fmt.Errorf("batch fraud-train over orders of [%s, %s): %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	m.TrainedAt, m.Engine = timestamppb.Now(), eng.Name()
	m.DataFrom, m.DataTo, m.LabelWindowSeconds = timestamppb.New(from), timestamppb.New(to), int64(ft.LabelWindow.Seconds())
	h := m.GetHoldout()
	fmt.Fprintf(out, "fraud model on %s: orders of %s .. %s, trained on %d (%d labelled fraud by chargebacks)\n",
		eng.Name(), from.Format(time.RFC3339), to.Format(time.RFC3339), m.GetTrainOrders(), m.GetTrainFraud())
	fmt.Fprintf(out, "held out (newest %d orders, %d fraud): AUPRC %.3f, AUC %.3f; at review_at %.3f (block_at %.3f): precision %.3f, recall %.3f, undisputed flagged %.2f%%\n",
		h.GetOrders(), h.GetFraud(), h.GetAuprc(), h.GetAuc(), m.GetReviewAt(), m.GetBlockAt(), h.GetPrecision(), h.GetRecall(), 100*h.GetHonestFlagged())
	for i, f := range m.GetFeatures() {
		fmt.Fprintf(out, "  %-22s %+.3f\n", f, m.GetWeights()[i])
	}
	if ft.Out != "" {
		b, err := protojson.MarshalOptions{Multiline: true}.Marshal(m)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(ft.Out, b, 0o644); err != nil {
			return nil, fmt.Errorf("batch fraud-train: %w", err)
		}
		fmt.Fprintf(out, "model written to %s\n", ft.Out)
	}
	if ft.Publish {
		if err := ensureTopics(ctx, cfg); err != nil {
			return nil, err
		}
		v, err := fraud.PublishModel(ctx, cfg.Kafka, m)
		if err != nil {
			return nil, err
		}
		m.Version = v
		fmt.Fprintf(out, "model version %d published; running fraud instances score with it\n", v)
	}
	return m, nil
}

// profileRetention is how far back the online profiles remember, which the training
// features must look back too: the configured rule set's.
func profileRetention(cfg config.Config) (time.Duration, error) {
	rs, _, err := configuredRules(cfg)
	if err != nil {
		return 0, err
	}
	return rs.Retention(), nil
}
