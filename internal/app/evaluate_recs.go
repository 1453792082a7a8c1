package app

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/batch/duckdb"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/recommend/baseline"
	"github.com/bytebasket/bytebasket/internal/recommend/interactions"
	"github.com/bytebasket/bytebasket/internal/recommend/rankeval"
	"github.com/bytebasket/bytebasket/internal/recommend/split"
)

// EvaluateRecsOptions configure `bytebasket batch evaluate-recs`.
type EvaluateRecsOptions struct {
	File  string                 // interactions: user,item[,rating[,timestamp]]; empty: the lake's
	Lake  batch.LakeInteractions // measured when File is empty
	Read  interactions.Options   // separator, header
	Split string                 // "time" (the default) or "stratified"
	Ratio float64                // of the interactions (time) or of each user's (stratified) trained on
	Seed  uint64                 // of the stratified split and the random baseline
	K     int
	Model batch.Recommend // similarity and half-life; K and Reference are set here
	JSON  bool
}

// EvaluateRecsReport is what evaluate-recs measured.
type EvaluateRecsReport struct {
	Split      string                     `json:"split"`
	Ratio      float64                    `json:"ratio"`
	Seed       uint64                     `json:"seed"`
	Similarity string                     `json:"similarity"`
	HalfLife   string                     `json:"half_life"`
	Train      int                        `json:"train_interactions"`
	Catalog    int                        `json:"catalog_items"`
	Models     map[string]rankeval.Report `json:"models"` // sar, popularity, random
	Seconds    float64                    `json:"sar_seconds"`
}

// EvaluateRecs is `bytebasket batch evaluate-recs`: the interactions of a file, or of the
// lake (on the configured engine), split for training and testing, SAR (the recommend job's
// SQL, on DuckDB) trained on one part and measured on the other beside the most popular and
// random items, as a table or JSON on out.
func EvaluateRecs(ctx context.Context, cfg config.Config, opts EvaluateRecsOptions, out io.Writer) (EvaluateRecsReport, error) {
	opts.Model.K = opts.K
	if err := opts.Model.Check(); err != nil {
		return EvaluateRecsReport{}, fmt.Errorf("evaluate-recs: %w", err)
	}
	if opts.Ratio <= 0 || opts.Ratio >= 1 {
		return EvaluateRecsReport{}, fmt.Errorf("evaluate-recs: ratio %v: want one in (0, 1)", opts.Ratio)
	}
	in, source, err := readInteractions(ctx, cfg, opts)
	if err != nil {
		return EvaluateRecsReport{}, err
	}
	var s split.Split
	switch opts.Split {
	case "time", "":
		opts.Split, s = "time", split.ByTime(in, opts.Ratio)
	case "stratified":
		s = split.Stratified(in, opts.Ratio, opts.Seed)
	default:
		return EvaluateRecsReport{}, fmt.Errorf("evaluate-recs: split %q is not time or stratified", opts.Split)
	}
	if opts.Split == "time" && len(in) > 0 && !slices.ContainsFunc(in, func(x interactions.Interaction) bool { return !x.Time.IsZero() }) {
		return EvaluateRecsReport{}, fmt.Errorf("evaluate-recs: %s has no timestamps to split by time: use --split stratified", source)
	}
	if len(s.Train) == 0 || len(s.Truth) == 0 {
		return EvaluateRecsReport{}, fmt.Errorf("evaluate-recs: %s: %d interactions leave %d to train on and %d users to test", source, len(in), len(s.Train), len(s.Truth))
	}
	cat := baseline.NewCatalog(s.Train)
	users := slices.Sorted(maps.Keys(s.Truth))
	start := time.Now()
	sar, err := runSAR(ctx, s.Train, opts)
	if err != nil {
		return EvaluateRecsReport{}, err
	}
	r := EvaluateRecsReport{Split: opts.Split, Ratio: opts.Ratio, Seed: opts.Seed, Similarity: string(opts.Model.Similarity),
		HalfLife: opts.Model.HalfLife.String(), Train: len(s.Train), Catalog: len(cat.Items), Seconds: time.Since(start).Seconds(),
		Models: map[string]rankeval.Report{
			"sar":        rankeval.Measure(s.Truth, sar, opts.K, len(cat.Items)),
			"popularity": rankeval.Measure(s.Truth, cat.Popular(users, opts.K), opts.K, len(cat.Items)),
			"random":     rankeval.Measure(s.Truth, cat.Random(users, opts.K, opts.Seed), opts.K, len(cat.Items)),
		}}
	if opts.JSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return r, enc.Encode(r)
	}
	fmt.Fprintf(out, "%s split (%.2f) of %s: %d interactions trained on, %d items, %d test users; SAR (%s, half-life %s) in %.1f s\n",
		r.Split, r.Ratio, source, r.Train, r.Catalog, len(users), r.Similarity, r.HalfLife, r.Seconds)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "model\tMAP\tMAP@%[1]d\tnDCG@%[1]d\tPrecision@%[1]d\tRecall@%[1]d\tHitRate@%[1]d\tcoverage\tusers\t\n", opts.K)
	for _, name := range []string{"sar", "popularity", "random"} {
		m := r.Models[name]
		fmt.Fprintf(w, "%s\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%d\t\n", name, m.MAP, m.MAPAtK, m.NDCG, m.Precision, m.Recall, m.HitRate, m.Coverage, m.Users)
	}
	return r, w.Flush()
}

// readInteractions reads the file of opts, or the lake's interactions of opts.Lake; source
// names where they came from.
func readInteractions(ctx context.Context, cfg config.Config, opts EvaluateRecsOptions) ([]interactions.Interaction, string, error) {
	if opts.File != "" {
		f, err := os.Open(opts.File)
		if err != nil {
			return nil, "", fmt.Errorf("evaluate-recs: %w", err)
		}
		defer f.Close()
		in, err := interactions.Read(f, opts.Read)
		if err != nil {
			return nil, "", fmt.Errorf("evaluate-recs: %s: %w", opts.File, err)
		}
		return in, opts.File, nil
	}
	eng, err := openEngine(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	defer eng.Close()
	if err := eng.RegisterViews(ctx); err != nil {
		return nil, "", err
	}
	rows, err := opts.Lake.Rows(ctx, eng)
	if err != nil {
		return nil, "", err
	}
	in := make([]interactions.Interaction, len(rows))
	for i, r := range rows {
		user, err1 := batch.String(r[0])
		item, err2 := batch.String(r[1])
		w, ok := r[2].(float64)
		at, err3 := batch.Time(r[3])
		if err := cmp.Or(err1, err2, err3); err != nil || !ok {
			return nil, "", fmt.Errorf("evaluate-recs: interaction %d of the lake, %v, is not (user, item, weight as a double, time): %v", i, r, err)
		}
		in[i] = interactions.Interaction{User: user, Item: item, Rating: w, Time: at}
	}
	source := fmt.Sprintf("the lake's interactions of [%s, %s) on %s", opts.Lake.From.Format(time.RFC3339), opts.Lake.To.Format(time.RFC3339), eng.Name())
	return in, source, nil
}

// runSAR runs the recommend job on DuckDB over train (written to a scratch Parquet file):
// each user's top K, the newest interaction as the reference time.
func runSAR(ctx context.Context, train []interactions.Interaction, opts EvaluateRecsOptions) (map[string][]string, error) {
	dir, err := os.MkdirTemp("", "bytebasket-evaluate-recs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	rows := make([]batch.InteractionRow, len(train))
	for i, x := range train {
		rows[i] = batch.InteractionRow{UserID: x.User, ItemID: x.Item, Weight: x.Rating, EventTime: x.Time.UTC()}
		if x.Time.After(opts.Model.Reference) {
			opts.Model.Reference = x.Time
		}
	}
	path := filepath.Join(dir, "train.parquet")
	if err := writeParquet(path, rows); err != nil {
		return nil, err
	}
	eng, err := duckdb.Open(dir)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	if err := eng.RegisterParquet(ctx, batch.ViewInteractions, path); err != nil {
		return nil, err
	}
	scored, err := opts.Model.Run(ctx, eng)
	if err != nil {
		return nil, err
	}
	recs := make(map[string][]string, len(scored))
	for u, list := range scored {
		for _, s := range list {
			recs[u] = append(recs[u], s.Item)
		}
	}
	return recs, nil
}

func writeParquet[T any](path string, rows []T) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := parquet.Write(f, rows); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
