package app

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/bytebasket/bytebasket/internal/batch/batchtest"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
)

// `batch fraud-train` on DuckDB over a week of a simulated shop: the model it writes is
// valid, was trained on chargeback labels only, and ranks the held-out newest orders far
// better than chance; orders too new for their chargebacks are left out. Three seeds, so
// the figures in docs/benchmarks.md come from one command.
func TestBatchFraudTrain(t *testing.T) {
	for _, seed := range []uint64{8, 9, 10} {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { trainOnSimulatedWeek(t, seed) })
	}
}

func trainOnSimulatedWeek(t *testing.T, seed uint64) {
	ctx := context.Background()
	dir := t.TempDir()
	loc, err := local.Open(filepath.Join(dir, "lake"))
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	l, err := batchtest.Build(ctx, batchtest.Options{
		Sim:    sim.Config{Seed: seed, Users: 3000, Start: time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), Rate: 0.5, FraudRate: 0.03},
		Events: 300_000, MaxFileRows: 20_000,
	}, loc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.DataDir, cfg.Lake.Backend, cfg.Lake.Root, cfg.Batch.Engine = dir, "local", "lake", "duckdb"
	out := filepath.Join(dir, "model.json")
	const labelWindow = 3 * 24 * time.Hour
	var log bytes.Buffer
	m, err := BatchFraudTrain(ctx, cfg, FraudTrain{To: l.Last.Add(-labelWindow), Days: 4, LabelWindow: labelWindow,
		Train: riskmodel.DefaultTrainConfig(), Out: out}, &log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lake %s .. %s\n%s", l.First, l.Last, log.String())
	h := m.GetHoldout()
	base := float64(h.GetFraud()) / float64(h.GetOrders())
	if m.GetTrainFraud() < 20 || h.GetFraud() == 0 || h.GetAuc() < 0.8 || h.GetAuprc() < 3*base {
		t.Errorf("model %v: too few labels or no better than chance (fraud share %.3f)", h, base)
	}
	if !m.GetDataTo().AsTime().Equal(l.Last.Add(-labelWindow)) || !strings.Contains(log.String(), "held out") {
		t.Errorf("trained up to %v, want %v", m.GetDataTo().AsTime(), l.Last.Add(-labelWindow))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.FraudModel
	if err := protojson.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := riskmodel.FromProto(&back); err != nil {
		t.Fatalf("the written model does not load: %v", err)
	}

	if _, err := BatchFraudTrain(ctx, cfg, FraudTrain{To: l.First.Add(-time.Hour), Days: 1, LabelWindow: labelWindow,
		Train: riskmodel.DefaultTrainConfig()}, &log); err == nil || !strings.Contains(err.Error(), "both classes") {
		t.Errorf("training on a range with no orders: %v, want a clear refusal", err)
	}
}
