// Command bytebasket is the one binary of ByteBasket. Each subcommand runs one role; the
// roles themselves live in internal/app.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bytebasket/bytebasket/internal/app"
	"github.com/bytebasket/bytebasket/internal/batch"
	"github.com/bytebasket/bytebasket/internal/bus"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/fraud/riskmodel"
	"github.com/bytebasket/bytebasket/internal/sim"
)

// version is set at link time (-ldflags "-X main.version=..."); otherwise build info.
var version = ""

const usage = `bytebasket: e-commerce events to real-time metrics, fraud alerts and trends.

Usage:
  bytebasket run      [--data-dir DIR] [--http ADDR] [--grpc ADDR] [--rate R] [--seed S]   embedded mode, all in one process
  bytebasket produce  [--brokers HOST:PORT] [--count N | --duration D] [--rate R] [--users U] [--seed S]
                      [--duplicates F] [--partitioner kafka|librdkafka] [--sim-rate R] [--throttle R]
                      [--fraud-rate F] [--fraud-mix NAME=W,...] [--fraud-amount X]
  bytebasket stream   [--brokers HOST:PORT] [--http ADDR] [--group G]  live metrics into the serving store
  bytebasket fraud    [--brokers HOST:PORT] [--http ADDR] [--group G] [--rules FILE]  decisions into fraud-alerts, exactly once
  bytebasket fraud    rules apply [--brokers HOST:PORT] FILE  publish a rule set; running instances switch to it
  bytebasket fraud    evaluate [--brokers HOST:PORT] [--labels FILE] [--since TIME] [--json]  precision, recall, AUPRC against the truth
  bytebasket archive  [--brokers HOST:PORT] [--http ADDR] [--lake local|hdfs] [--lake-root DIR]  raw events to Parquet
  bytebasket serve    [--http ADDR] [--grpc ADDR] [--store embedded|cassandra] [--data-dir DIR]  API, gRPC and dashboard
  bytebasket batch    trends [--since D | --from T --to T] [--engine duckdb|spark]  hourly and daily history
  bytebasket batch    fraud-train [--days N] [--label-window D] [--engine E] [--out FILE] [--publish]  fraud model from chargebacks
  bytebasket batch    evaluate-recs [--file F [--sep C] [--header] | --since D [--to T] [--engine E]] [--split time|stratified] [--ratio R] [--seed N] [--k K] [--similarity S] [--half-life D] [--json]  SAR vs popularity and random, offline
  bytebasket retention [--dry-run]                             delete lake partitions older than retention.days
  bytebasket topics   create|describe [--brokers HOST:PORT]
  bytebasket schema   apply [--config DIR]                      Cassandra keyspace, tables and TTLs
  bytebasket state    reset [--group G] [--store embedded|cassandra]  forget a stopped group's checkpoints
  bytebasket version

Every subcommand takes --config DIR (YAML files, see config/); environment variables
BYTEBASKET_* override the files and flags override both.
`

func main() {
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(ctx, args)
	case "produce":
		err = produceCmd(ctx, args)
	case "stream":
		err = streamCmd(ctx, args)
	case "fraud":
		err = fraudCmd(ctx, args)
	case "archive":
		err = archiveCmd(ctx, args)
	case "serve":
		err = serveCmd(ctx, args)
	case "retention":
		err = retentionCmd(ctx, args)
	case "batch":
		err = batchCmd(ctx, args)
	case "topics":
		err = topicsCmd(ctx, args)
	case "schema":
		err = schemaCmd(ctx, args)
	case "state":
		err = stateCmd(ctx, args)
	case "version", "--version":
		fmt.Println("bytebasket", buildVersion())
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "bytebasket: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // stopped by SIGTERM or Ctrl-C, possibly while still starting
	}
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(os.Stderr, "bytebasket: %v\n", err)
			os.Exit(2)
		}
		slog.Error("bytebasket failed", "err", err)
		os.Exit(1)
	}
}

type usageError struct{ error }

// parse parses flags and loads config, applying flags last.
func parse(fs *flag.FlagSet, args []string, apply func(*config.Config)) (config.Config, error) {
	dir := fs.String("config", os.Getenv("BYTEBASKET_CONFIG"), "config directory (YAML files)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, usageError{err}
	}
	cfg, err := config.Load(*dir)
	if err != nil {
		return cfg, err
	}
	apply(&cfg)
	return cfg, cfg.Validate()
}

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory (default bytebasket-data)")
	httpAddr := fs.String("http", "", "HTTP listen address (default 127.0.0.1:8080)")
	grpcAddr := fs.String("grpc", "", "gRPC listen address (default 127.0.0.1:9090)")
	kafkaListen := fs.String("kafka-listen", "", "embedded broker listen address (default 127.0.0.1:19092)")
	rate := fs.Float64("rate", -1, "simulator mean events/s (0 = simulator off)")
	seed := fs.Uint64("seed", 0, "simulator seed (0 = fresh)")
	cfg, err := parse(fs, args, func(c *config.Config) {
		setStr(&c.DataDir, *dataDir)
		setStr(&c.HTTPAddr, *httpAddr)
		setStr(&c.GRPCAddr, *grpcAddr)
		setStr(&c.Kafka.EmbeddedListen, *kafkaListen)
		if *rate == 0 {
			c.Sim.Enabled = false
		} else if *rate > 0 {
			c.Sim.Rate = *rate
		}
		if *seed != 0 {
			c.Sim.Seed = *seed
		}
	})
	if err != nil {
		return err
	}
	// run is embedded mode by definition: it starts its own broker.
	cfg.Kafka.Brokers = nil
	return app.Run(ctx, cfg, os.Stdout)
}

// parseWeights reads name=weight,name=weight; empty is nil.
func parseWeights(s string) (map[string]float64, error) {
	if s == "" {
		return nil, nil
	}
	out := map[string]float64{}
	for _, part := range strings.Split(s, ",") {
		name, w, ok := strings.Cut(strings.TrimSpace(part), "=")
		v, err := strconv.ParseFloat(w, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("%q is not name=weight", part)
		}
		out[name] = v
	}
	return out, nil
}

func produceCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("produce", flag.ContinueOnError)
	brokers := brokersFlag(fs)
	count := fs.Int64("count", 0, "produce exactly N events, then exit")
	duration := fs.Duration("duration", 0, "produce for D, then exit")
	rate := fs.Float64("rate", 1000, "mean events/s; 0 = as fast as possible")
	users := fs.Int("users", 10000, "shopper population size")
	seed := fs.Uint64("seed", 0, "simulator seed; same seed and --start give the same events (0 = fresh)")
	start := fs.String("start", "", "simulated clock start, RFC 3339 (default now)")
	flat := fs.Bool("flat", false, "constant rate instead of the day/night curve")
	labels := fs.Bool("labels", true, "write fraud ground truth to the sim-labels topic")
	createTopics := fs.Bool("create-topics", true, "create missing topics first")
	duplicates := fs.Float64("duplicates", 0, "share of events sent twice, as a retrying client would (0..1)")
	partitioner := fs.String("partitioner", "kafka", "kafka (murmur2, the default) or librdkafka (crc32): what other producers do")
	throttle := fs.Float64("throttle", 0, "with --rate 0: at most this many events/s of wall time (0 = no bound), so consumers follow a backfill as live traffic")
	simRate := fs.Float64("sim-rate", 0, "with --rate 0: simulated events per second of event time (default 1000); lower spreads a backfill over more days")
	fraudRate := fs.Float64("fraud-rate", 0, "share of sessions that are fraud (default 0.01)")
	fraudMix := fs.String("fraud-mix", "", "fraud scenarios' weights, e.g. card_testing=1,account_takeover=3 (default: equal; "+strings.Join(sim.Scenarios, ", ")+")")
	fraudAmount := fs.Float64("fraud-amount", 0, "scale of what high-value fraud spends (default 1)")
	skip := fs.Int64("skip", 0, "simulate N events first and send none: with the same --seed and --start, continue a run of --count N")
	cfg, err := parse(fs, args, brokers)
	if err != nil {
		return err
	}
	if *count > 0 && *duration > 0 {
		return usageError{errors.New("produce: give --count or --duration, not both")}
	}
	if *count < 0 || *duration < 0 || *rate < 0 || *users < 1 || *duplicates < 0 || *duplicates > 1 || *throttle < 0 || *simRate < 0 || *skip < 0 {
		return usageError{errors.New("produce: --count, --duration, --rate, --sim-rate, --throttle and --skip must not be negative, --users at least 1, --duplicates in 0..1")}
	}
	part, err := bus.Partitioner(*partitioner)
	if err != nil {
		return usageError{fmt.Errorf("produce: --partitioner: %w", err)}
	}
	mix, err := parseWeights(*fraudMix)
	if err != nil {
		return usageError{fmt.Errorf("produce: --fraud-mix: %w", err)}
	}
	var startAt time.Time
	if *start != "" {
		if startAt, err = time.Parse(time.RFC3339, *start); err != nil {
			return usageError{fmt.Errorf("produce: --start: %w", err)}
		}
	}
	if err := needBrokers(cfg, "produce"); err != nil {
		return err
	}
	if *createTopics {
		if err := app.TopicsCreate(ctx, cfg, io.Discard); err != nil {
			return err
		}
	}
	prod, err := bus.NewProducer(cfg.Kafka, nil, part)
	if err != nil {
		return err
	}
	sum, err := app.Produce(ctx, prod, app.ProduceOptions{
		Count: *count, Duration: *duration, Rate: *rate, Users: *users, Seed: *seed, Start: startAt,
		Diurnal: !*flat, Labels: *labels, Progress: true, Duplicates: *duplicates,
		SimRate: *simRate, Throttle: *throttle, FraudRate: *fraudRate, FraudMix: mix, FraudAmount: *fraudAmount, Skip: *skip,
	}, nil)
	closeCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	closeErr := prod.Close(closeCtx)
	fmt.Println(sum.String())
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return closeErr
}

// brokersFlag adds --brokers to fs; the returned setter applies it to a config.
func brokersFlag(fs *flag.FlagSet) func(*config.Config) {
	b := fs.String("brokers", "", "comma-separated Kafka bootstrap servers")
	return func(c *config.Config) {
		if *b != "" {
			c.Kafka.Brokers = config.SplitList(*b)
		}
	}
}

// needBrokers refuses a command that talks to a Kafka when none is configured.
func needBrokers(cfg config.Config, cmd string) error {
	if !cfg.Embedded() {
		return nil
	}
	return usageError{fmt.Errorf("%s: no brokers: pass --brokers, set BYTEBASKET_KAFKA_BROKERS or kafka.brokers in --config "+
		"(bytebasket run's broker listens on 127.0.0.1:19092)", cmd)}
}

// consumerFlags are the flags of the roles that consume Kafka into the serving store.
type consumerFlags struct {
	brokers                                func(*config.Config)
	httpAddr, group, storeBackend, dataDir *string
}

func newConsumerFlags(fs *flag.FlagSet, storeUse string) consumerFlags {
	return consumerFlags{
		brokers:      brokersFlag(fs),
		httpAddr:     fs.String("http", "", "HTTP listen address for /healthz, /readyz, /metrics"),
		group:        fs.String("group", "", "consumer group (instances of one group share partitions)"),
		storeBackend: fs.String("store", "", storeUse+": embedded or cassandra"),
		dataDir:      fs.String("data-dir", "", "data directory of the embedded store"),
	}
}

// apply sets what was given; group is the role's group setting.
func (f consumerFlags) apply(c *config.Config, group *string) {
	f.brokers(c)
	setStr(&c.HTTPAddr, *f.httpAddr)
	setStr(group, *f.group)
	setStr(&c.Store.Backend, *f.storeBackend)
	setStr(&c.DataDir, *f.dataDir)
}

func streamCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("stream", flag.ContinueOnError)
	flags := newConsumerFlags(fs, "serving store")
	cfg, err := parse(fs, args, func(c *config.Config) { flags.apply(c, &c.Stream.Group) })
	if err != nil {
		return err
	}
	if err := needBrokers(cfg, "stream"); err != nil {
		return err
	}
	return app.Stream(ctx, cfg, os.Stdout)
}

func fraudCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "rules" {
		return fraudRulesCmd(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "evaluate" {
		return fraudEvaluateCmd(ctx, args[1:])
	}
	fs := flag.NewFlagSet("fraud", flag.ContinueOnError)
	flags := newConsumerFlags(fs, "checkpoint store")
	rulesFile := fs.String("rules", "", "rule set file (default: fraud.rules_file, else the shipped set)")
	cfg, err := parse(fs, args, func(c *config.Config) {
		flags.apply(c, &c.Fraud.Group)
		setStr(&c.Fraud.RulesFile, *rulesFile)
	})
	if err != nil {
		return err
	}
	if err := needBrokers(cfg, "fraud"); err != nil {
		return err
	}
	return app.Fraud(ctx, cfg, os.Stdout)
}

// fraudEvaluateCmd is `bytebasket fraud evaluate`.
func fraudEvaluateCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fraud evaluate", flag.ContinueOnError)
	brokers := brokersFlag(fs)
	labels := fs.String("labels", "", "CSV of order_id[,scenario] of confirmed fraud (default: the sim-labels topic)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	since := fs.String("since", "", "evaluate only orders placed at or after this time, RFC 3339 (what came before warms the profiles up)")
	cfg, err := parse(fs, args, brokers)
	if err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		if from, err = time.Parse(time.RFC3339, *since); err != nil {
			return usageError{fmt.Errorf("fraud evaluate: --since: %w", err)}
		}
	}
	if err := needBrokers(cfg, "fraud evaluate"); err != nil {
		return err
	}
	return app.FraudEvaluate(ctx, cfg, app.FraudEvaluateOptions{Labels: *labels, Since: from, JSON: *asJSON}, os.Stdout)
}

// fraudRulesCmd is `bytebasket fraud rules apply FILE`.
func fraudRulesCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "apply" {
		return usageError{errors.New("fraud rules: the subcommand is apply: bytebasket fraud rules apply [--brokers HOST:PORT] FILE")}
	}
	fs := flag.NewFlagSet("fraud rules apply", flag.ContinueOnError)
	brokers := brokersFlag(fs)
	cfg, err := parse(fs, args[1:], brokers)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("fraud rules apply: name one rule set file")}
	}
	if err := needBrokers(cfg, "fraud rules apply"); err != nil {
		return err
	}
	return app.FraudRulesApply(ctx, cfg, fs.Arg(0), os.Stdout)
}

func serveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	httpAddr := fs.String("http", "", "HTTP listen address for the API, the dashboard and /healthz, /readyz, /metrics (default 127.0.0.1:8080)")
	grpcAddr := fs.String("grpc", "", "gRPC listen address (default 127.0.0.1:9090)")
	storeBackend := fs.String("store", "", "serving store: embedded or cassandra")
	dataDir := fs.String("data-dir", "", "data directory of the embedded store")
	cfg, err := parse(fs, args, func(c *config.Config) {
		setStr(&c.HTTPAddr, *httpAddr)
		setStr(&c.GRPCAddr, *grpcAddr)
		setStr(&c.Store.Backend, *storeBackend)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	return app.Serve(ctx, cfg, os.Stdout)
}

func archiveCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("archive", flag.ContinueOnError)
	brokers := brokersFlag(fs)
	httpAddr := fs.String("http", "", "HTTP listen address for /healthz, /readyz, /metrics")
	group := fs.String("group", "", "consumer group (instances of one group share partitions)")
	backend := fs.String("lake", "", "lake backend: local or hdfs")
	root := fs.String("lake-root", "", "lake root: a local directory or a path inside HDFS")
	dataDir := fs.String("data-dir", "", "data directory (a relative local lake root is inside it)")
	cfg, err := parse(fs, args, func(c *config.Config) {
		brokers(c)
		setStr(&c.HTTPAddr, *httpAddr)
		setStr(&c.Archive.Group, *group)
		setStr(&c.Lake.Backend, *backend)
		setStr(&c.Lake.Root, *root)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	if err := needBrokers(cfg, "archive"); err != nil {
		return err
	}
	return app.Archive(ctx, cfg, os.Stdout)
}

func batchCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "fraud-train" {
		return fraudTrainCmd(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "evaluate-recs" {
		return evaluateRecsCmd(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "trends" {
		return usageError{errors.New("batch: want trends, fraud-train or evaluate-recs")}
	}
	fs := flag.NewFlagSet("batch trends", flag.ContinueOnError)
	since := fs.Duration("since", 48*time.Hour, "compute the trends of this much time before now")
	from := fs.String("from", "", "start of the event-time range, RFC 3339 (instead of --since)")
	to := fs.String("to", "", "end of the event-time range, RFC 3339 (default now)")
	engine := fs.String("engine", "", "SQL engine: duckdb (local lake) or spark")
	storeBackend := fs.String("store", "", "serving store: embedded or cassandra")
	dataDir := fs.String("data-dir", "", "data directory (embedded store, local lake)")
	cfg, err := parse(fs, args[1:], func(c *config.Config) {
		setStr(&c.Batch.Engine, *engine)
		setStr(&c.Store.Backend, *storeBackend)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	end := time.Now()
	if *to != "" {
		if end, err = time.Parse(time.RFC3339, *to); err != nil {
			return usageError{fmt.Errorf("batch trends: --to: %w", err)}
		}
	}
	start := end.Add(-*since)
	if *from != "" {
		if start, err = time.Parse(time.RFC3339, *from); err != nil {
			return usageError{fmt.Errorf("batch trends: --from: %w", err)}
		}
	}
	if !start.Before(end) {
		return usageError{fmt.Errorf("batch trends: the range [%s, %s) is empty", start.Format(time.RFC3339), end.Format(time.RFC3339))}
	}
	return app.BatchTrends(ctx, cfg, start, end, os.Stdout)
}

func fraudTrainCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("batch fraud-train", flag.ContinueOnError)
	days := fs.Int("days", 28, "train on the orders of this many days")
	to := fs.String("to", "", "end of the orders' range, RFC 3339 (default now less --label-window)")
	labelWindow := fs.Duration("label-window", 14*24*time.Hour, "how long after an order a chargeback still labels it; newer orders are not trained on")
	tc := riskmodel.DefaultTrainConfig()
	fs.Float64Var(&tc.ReviewAt, "review-at", tc.ReviewAt, "probability from which the model reviews an order (default: from --review-budget)")
	fs.Float64Var(&tc.BlockAt, "block-at", tc.BlockAt, "probability from which the model blocks an order (default: from --block-budget)")
	fs.Float64Var(&tc.ReviewBudget, "review-budget", tc.ReviewBudget, "share of the undisputed training orders the model may review at most")
	fs.Float64Var(&tc.BlockBudget, "block-budget", tc.BlockBudget, "share of the undisputed training orders the model may block at most")
	fs.Float64Var(&tc.L2, "l2", tc.L2, "L2 penalty on the standardized weights")
	out := fs.String("out", "", "write the model to this file (JSON)")
	publish := fs.Bool("publish", false, "publish the model to the fraud-rules topic: running fraud instances score with it")
	engine := fs.String("engine", "", "SQL engine: duckdb (local lake) or spark")
	dataDir := fs.String("data-dir", "", "data directory (local lake)")
	brokers := brokersFlag(fs)
	cfg, err := parse(fs, args, func(c *config.Config) {
		setStr(&c.Batch.Engine, *engine)
		setStr(&c.DataDir, *dataDir)
		brokers(c)
	})
	if err != nil {
		return err
	}
	if tc.ReviewAt < 0 || tc.BlockAt < 0 || tc.ReviewAt > 1 || tc.BlockAt > 1 || tc.ReviewBudget < 0 || tc.ReviewBudget >= 1 || tc.BlockBudget < 0 || tc.BlockBudget >= 1 {
		return usageError{errors.New("batch fraud-train: --review-at and --block-at must be in 0..1, the budgets in [0, 1)")}
	}
	ft := app.FraudTrain{Days: *days, LabelWindow: *labelWindow, Train: tc, Out: *out, Publish: *publish}
	if *to != "" {
		if ft.To, err = time.Parse(time.RFC3339, *to); err != nil {
			return usageError{fmt.Errorf("batch fraud-train: --to: %w", err)}
		}
	}
	if *publish {
		if err := needBrokers(cfg, "batch fraud-train --publish"); err != nil {
			return err
		}
	}
	_, err = app.BatchFraudTrain(ctx, cfg, ft, os.Stdout)
	return err
}

func evaluateRecsCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("batch evaluate-recs", flag.ContinueOnError)
	opts := app.EvaluateRecsOptions{Model: batch.Recommend{Similarity: batch.Jaccard}}
	fs.StringVar(&opts.File, "file", "", "interactions file: user,item[,rating[,timestamp]] per line")
	sep := fs.String("sep", ",", `field separator of --file ("\t" or tab for a tab)`)
	fs.BoolVar(&opts.Read.Header, "header", false, "the first line of --file is a header (recognised by itself when its rating or timestamp is not a number)")
	fs.StringVar(&opts.Split, "split", "time", "time (train on the oldest --ratio of the interactions) or stratified (a random --ratio of each user's, as Recommenders' published SAR figures)")
	fs.Float64Var(&opts.Ratio, "ratio", 0.75, "share trained on")
	fs.Uint64Var(&opts.Seed, "seed", 42, "seed of the stratified split and the random baseline")
	fs.IntVar(&opts.K, "k", 10, "recommendations per user")
	similarity := fs.String("similarity", string(batch.Jaccard), "item similarity: jaccard, lift, cosine or count")
	fs.DurationVar(&opts.Model.HalfLife, "half-life", 30*24*time.Hour, "half-life of an interaction's weight")
	fs.BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	since := fs.Duration("since", 28*24*time.Hour, "without --file: the lake's interactions of this much time before --to")
	to := fs.String("to", "", "without --file: end of the lake's range, RFC 3339 (default now)")
	engine := fs.String("engine", "", "without --file: SQL engine reading the lake: duckdb (local lake) or spark")
	dataDir := fs.String("data-dir", "", "without --file: data directory (local lake)")
	cfg, err := parse(fs, args, func(c *config.Config) {
		setStr(&c.Batch.Engine, *engine)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	opts.Lake.To, opts.Lake.Weights = time.Now(), batch.DefaultWeights
	if *to != "" {
		if opts.Lake.To, err = time.Parse(time.RFC3339, *to); err != nil {
			return usageError{fmt.Errorf("batch evaluate-recs: --to: %w", err)}
		}
	}
	opts.Lake.From = opts.Lake.To.Add(-*since)
	switch *sep {
	case `\t`, "tab":
		opts.Read.Separator = '\t'
	default:
		r := []rune(*sep)
		if len(r) != 1 {
			return usageError{fmt.Errorf("batch evaluate-recs: --sep %q is not one character", *sep)}
		}
		opts.Read.Separator = r[0]
	}
	opts.Model.Similarity = batch.Similarity(*similarity) // checked with the other flags by EvaluateRecs
	_, err = app.EvaluateRecs(ctx, cfg, opts, os.Stdout)
	return err
}

func retentionCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	dryRun := fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
	backend := fs.String("lake", "", "lake backend: local or hdfs")
	root := fs.String("lake-root", "", "lake root: a local directory or a path inside HDFS")
	dataDir := fs.String("data-dir", "", "data directory (a relative local lake root is inside it)")
	cfg, err := parse(fs, args, func(c *config.Config) {
		setStr(&c.Lake.Backend, *backend)
		setStr(&c.Lake.Root, *root)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	return app.Retention(ctx, cfg, *dryRun, os.Stdout)
}

func topicsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "describe") {
		return usageError{errors.New("topics: want create or describe")}
	}
	fs := flag.NewFlagSet("topics "+args[0], flag.ContinueOnError)
	brokers := brokersFlag(fs)
	cfg, err := parse(fs, args[1:], brokers)
	if err != nil {
		return err
	}
	if err := needBrokers(cfg, "topics"); err != nil {
		return err
	}
	if args[0] == "create" {
		return app.TopicsCreate(ctx, cfg, os.Stdout)
	}
	return app.TopicsDescribe(ctx, cfg, os.Stdout)
}

func schemaCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "apply" {
		return usageError{errors.New("schema: want apply")}
	}
	fs := flag.NewFlagSet("schema apply", flag.ContinueOnError)
	hosts := fs.String("hosts", "", "comma-separated Cassandra contact points")
	cfg, err := parse(fs, args[1:], func(c *config.Config) {
		if *hosts != "" {
			c.Cassandra.Hosts = config.SplitList(*hosts)
			c.Store.Backend = "cassandra"
		}
	})
	if err != nil {
		return err
	}
	return app.SchemaApply(ctx, cfg, os.Stdout)
}

func stateCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "reset" {
		return usageError{errors.New("state: want reset")}
	}
	fs := flag.NewFlagSet("state reset", flag.ContinueOnError)
	group := fs.String("group", "", "consumer group whose checkpoints to forget (default: the stream's)")
	storeBackend := fs.String("store", "", "serving store: embedded or cassandra")
	dataDir := fs.String("data-dir", "", "data directory of the embedded store")
	cfg, err := parse(fs, args[1:], func(c *config.Config) {
		setStr(&c.Store.Backend, *storeBackend)
		setStr(&c.DataDir, *dataDir)
	})
	if err != nil {
		return err
	}
	g := cfg.Stream.Group
	setStr(&g, *group)
	return app.StateReset(ctx, cfg, g, os.Stdout)
}

func setStr(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return "dev"
}
