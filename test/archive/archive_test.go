// Package archivetest runs `bytebasket archive` as users do, against the real Kafka and HDFS
// of deploy/local: it kills the archiver with SIGKILL while it writes, restarts it, and then
// requires every produced event in the lake exactly once, read back by engines nobody here
// wrote (DuckDB and Spark through Spark Connect) with the exact rows and column types.
package archivetest

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/batch/spark"
	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/event"
	"github.com/bytebasket/bytebasket/internal/lake"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/lake/local"
	"github.com/bytebasket/bytebasket/internal/sim"
	"github.com/bytebasket/bytebasket/internal/testenv"
	pb "github.com/bytebasket/bytebasket/proto/bytebasket/v1"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var binary string

func TestMain(m *testing.M) { testenv.MainWithBinary(m, &binary) }

const (
	chunks    = 6 // produced one after another while archivers start and are killed
	perChunk  = 10_000
	users     = 2000
	chunkSpan = time.Hour // of simulated time between chunk starts
)

// row is what both engines and the simulator must agree on, per event.
type row struct {
	ID, Type, User, Platform string
	TimeMicros               int64
	Detail                   string // stream-specific columns, formatted
}

// expected regenerates what the chunks of `produce --rate 0` wrote (1000 events/s of
// simulated time, the day/night curve), as rows per stream sorted by event id.
func expected(t *testing.T, seed uint64, start time.Time) map[string][]row {
	out := map[string][]row{}
	for c := range chunks {
		s, err := sim.New(sim.Config{Seed: seed + uint64(c), Users: users, Rate: 1000, Start: start.Add(time.Duration(c) * chunkSpan), Diurnal: true})
		if err != nil {
			t.Fatal(err)
		}
		for range perChunk {
			e, _ := s.Next()
			addExpected(out, e)
		}
	}
	for _, rows := range out {
		sort.Slice(rows, func(i, j int) bool { return rows[i].ID < rows[j].ID })
	}
	return out
}

func addExpected(out map[string][]row, e *pb.Envelope) {
	{
		k := event.KindOf(e)
		r := row{ID: e.GetEventId(), Type: string(k), User: e.GetUserId(), Platform: event.Platform(e.GetSource()),
			TimeMicros: e.GetEventTime().AsTime().UnixMicro()}
		stream := event.TopicOf(k)
		if stream == event.TopicTransactions {
			var amount, currency, items string = "null", "null", "0"
			var m interface {
				GetAmountMinor() int64
				GetCurrency() string
			}
			switch {
			case e.GetOrderPlaced() != nil:
				m = e.GetOrderPlaced().GetTotal()
				items = fmt.Sprint(len(e.GetOrderPlaced().GetItems()))
			case e.GetPaymentAuthorized() != nil:
				m = e.GetPaymentAuthorized().GetAmount()
			case e.GetPaymentFailed() != nil:
				m = e.GetPaymentFailed().GetAmount()
			case e.GetRefund() != nil:
				m = e.GetRefund().GetAmount()
			case e.GetChargeback() != nil:
				m = e.GetChargeback().GetAmount()
			}
			if m != nil {
				amount, currency = fmt.Sprint(m.GetAmountMinor()), m.GetCurrency()
			}
			r.Detail = amount + " " + currency + " " + items
		} else {
			product, results := "null", "null"
			switch {
			case e.GetProductView() != nil:
				product = e.GetProductView().GetProductId()
			case e.GetCartAdd() != nil:
				product = e.GetCartAdd().GetProductId()
			case e.GetCartRemove() != nil:
				product = e.GetCartRemove().GetProductId()
			case e.GetCartQuantityChange() != nil:
				product = e.GetCartQuantityChange().GetProductId()
			case e.GetWishlistAdd() != nil:
				product = e.GetWishlistAdd().GetProductId()
			case e.GetWishlistRemove() != nil:
				product = e.GetWishlistRemove().GetProductId()
			case e.GetSearch() != nil:
				results = fmt.Sprint(e.GetSearch().GetResults())
			}
			r.Detail = product + " " + results
		}
		out[stream] = append(out[stream], r)
	}
}

// detailSQL formats row.Detail in SQL; the engines differ only in the list length function.
func detailSQL(stream, length string) string {
	if stream == event.TopicTransactions {
		return "coalesce(cast(amount_minor AS string), 'null') || ' ' || coalesce(currency, 'null') || ' ' || cast(" + length + "(items) AS string)"
	}
	return "coalesce(product_id, 'null') || ' ' || coalesce(cast(results AS string), 'null')"
}

func TestKillNineArchiveIsExactAndReadableBySparkAndDuckDB(t *testing.T) {
	kafkaAddr := testenv.Addr(t, testenv.Kafka)
	hdfsAddr := testenv.Addr(t, testenv.HDFS)
	sparkAddr := testenv.Addr(t, testenv.Spark)
	ctx := context.Background()
	id := time.Now().UnixNano()
	root := fmt.Sprintf("/it/archive-%d", id)
	prefix := fmt.Sprintf("it%d-", id)
	group := fmt.Sprintf("it-archive-%d", id)
	vars := append(os.Environ(),
		"BYTEBASKET_CONFIG="+filepath.Join(testenv.RepoRoot(), "config"),
		"BYTEBASKET_KAFKA_BROKERS="+kafkaAddr,
		"BYTEBASKET_KAFKA_TOPIC_PREFIX="+prefix,
		"BYTEBASKET_LAKE_BACKEND=hdfs",
		"BYTEBASKET_LAKE_ROOT="+root,
		"BYTEBASKET_HDFS_NAMENODES="+hdfsAddr,
		"BYTEBASKET_ARCHIVE_GROUP="+group,
		// Small files and frequent rolls, so the kills land between and during writes.
		"BYTEBASKET_ARCHIVE_ROLL_BYTES=262144",
		"BYTEBASKET_ARCHIVE_ROLL_INTERVAL=1s",
	)
	lakeCfg := config.Default().Lake
	lakeCfg.HDFS.Namenodes, lakeCfg.Root = []string{hdfsAddr}, root
	hl, err := hdfs.Open(lakeCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hl.RemoveAll(ctx, "/"); hl.Close() })

	seed, start := uint64(id), time.Now().Add(-chunks*chunkSpan).Truncate(time.Second)
	produce := func(c int) {
		p := exec.Command(binary, "produce", "--count", fmt.Sprint(perChunk), "--rate", "0", "--seed", fmt.Sprint(seed+uint64(c)),
			"--start", start.Add(time.Duration(c)*chunkSpan).Format(time.RFC3339), "--users", fmt.Sprint(users), "--labels=false")
		p.Env = vars
		if out, err := p.CombinedOutput(); err != nil {
			t.Fatalf("produce: %v\n%s", err, out)
		}
	}

	startArchive := func() *exec.Cmd {
		c := exec.Command(binary, "archive", "--http", "127.0.0.1:0")
		c.Env, c.Stderr = vars, os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _, _ = c.Process.Wait() })
		return c
	}
	rng := rand.New(rand.NewPCG(uint64(id), 2))
	countFiles := func() int {
		written, _ := hl.List(ctx, "")
		return len(written)
	}
	for i := range chunks {
		produce(i)
		before := countFiles()
		c := startArchive()
		// Kill once this instance has written (joining the group waits out the killed
		// member's session), at a random moment within the chunk.
		for deadline := time.Now().Add(time.Minute); countFiles() == before && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
		_ = c.Process.Signal(syscall.SIGKILL)
		_, _ = c.Process.Wait()
		t.Logf("kill -9 #%d with %d files in the lake, %d before it started", i+1, countFiles(), before)
	}
	c := startArchive()
	awaitCommitted(t, kafkaAddr, group, prefix, 2*time.Minute)
	_ = c.Process.Signal(syscall.SIGTERM)
	if err := c.Wait(); err != nil {
		t.Fatalf("archive after SIGTERM: %v", err)
	}

	// A local copy of the lake for DuckDB, file by file.
	files, err := hl.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ll, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := lake.ParseFileName(f.Path); !ok {
			t.Fatalf("unexpected lake file %s", f.Path)
		}
		b, err := hl.ReadFile(ctx, f.Path)
		if err != nil {
			t.Fatal(err)
		}
		if err := ll.WriteAtomic(ctx, f.Path, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d files in the lake", len(files))

	want := expected(t, seed, start)
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	sc := config.Default().Spark
	sc.Remote, sc.LakeURI = "sc://"+sparkAddr, "hdfs://"+hdfsAddr+root
	eng, err := spark.Connect(ctx, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	for _, stream := range []string{event.TopicUserActivity, event.TopicTransactions} {
		duck := fmt.Sprintf("read_parquet('%s/stream=%s/*/*/*.parquet', hive_partitioning = true, hive_types = {'date': DATE, 'hour': INTEGER})", ll.Root(), stream)
		spk := fmt.Sprintf("parquet.`%s`", eng.LakePath("stream="+stream))
		query := func(from, micros, length string) string {
			return fmt.Sprintf("SELECT event_id, event_type, user_id, platform, %s, %s FROM %s ORDER BY event_id", micros, detailSQL(stream, length), from)
		}
		// Every event exactly once: the row lists must be equal, duplicates included.
		gotDuck := duckRows(t, db, query(duck, "epoch_us(event_time)", "len"))
		if !reflect.DeepEqual(gotDuck, want[stream]) {
			t.Fatalf("%s: DuckDB read %d rows, want %d; first difference: %s", stream, len(gotDuck), len(want[stream]), firstDiff(gotDuck, want[stream]))
		}
		gotSpark := sparkRows(t, eng, query(spk, "unix_micros(event_time)", "size"))
		if !reflect.DeepEqual(gotSpark, want[stream]) {
			t.Fatalf("%s: Spark read %d rows, want %d; first difference: %s", stream, len(gotSpark), len(want[stream]), firstDiff(gotSpark, want[stream]))
		}
		// Column types as each engine sees them.
		duckTypes := map[string]string{}
		rows, err := db.Query("DESCRIBE SELECT * FROM " + duck)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, typ string
			var null, key, def, extra sql.NullString
			if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
				t.Fatal(err)
			}
			duckTypes[name] = typ
		}
		rows.Close()
		_, desc, err := eng.Query(ctx, "DESCRIBE SELECT * FROM "+spk)
		if err != nil {
			t.Fatal(err)
		}
		sparkTypes := map[string]string{}
		for _, r := range desc {
			sparkTypes[fmt.Sprint(r[0])] = fmt.Sprint(r[1])
		}
		wantTypes := map[string][2]string{ // column: DuckDB type, Spark type
			"event_time":   {"TIMESTAMP WITH TIME ZONE", "timestamp"},
			"kafka_offset": {"BIGINT", "bigint"},
			"date":         {"DATE", "date"},
			"hour":         {"INTEGER", "int"}, // hour=03 too (DuckDB would infer text)
		}
		if stream == event.TopicTransactions {
			wantTypes["amount_minor"] = [2]string{"BIGINT", "bigint"}
			wantTypes["items"] = [2]string{"STRUCT(product_id VARCHAR, category_id VARCHAR, quantity INTEGER, unit_price_minor BIGINT)[]",
				"array<struct<product_id:string,category_id:string,quantity:int,unit_price_minor:bigint>>"}
		} else {
			wantTypes["results"] = [2]string{"INTEGER", "int"}
			wantTypes["product_id"] = [2]string{"VARCHAR", "string"}
		}
		for col, w := range wantTypes {
			if duckTypes[col] != w[0] || sparkTypes[col] != w[1] {
				t.Errorf("%s.%s: DuckDB %q Spark %q, want %q and %q", stream, col, duckTypes[col], sparkTypes[col], w[0], w[1])
			}
		}
	}
}

// awaitCommitted waits until the group has committed every produced offset: everything is
// in renamed files.
func awaitCommitted(t *testing.T, addr, group, prefix string, d time.Duration) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	topics := []string{prefix + event.TopicUserActivity, prefix + event.TopicTransactions}
	var lag int64
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		ends, err := adm.ListEndOffsets(ctx, topics...)
		if err != nil {
			continue
		}
		committed, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			continue
		}
		lag = 0
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			if !ok {
				lag += o.Offset
				return
			}
			lag += o.Offset - c.At
		})
		if lag == 0 {
			return
		}
	}
	t.Fatalf("archive group still %d records behind after %s", lag, d)
}

func duckRows(t *testing.T, db *sql.DB, q string) []row {
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ID, &r.Type, &r.User, &r.Platform, &r.TimeMicros, &r.Detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func sparkRows(t *testing.T, eng *spark.Engine, q string) []row {
	_, rows, err := eng.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]row, len(rows))
	for i, r := range rows {
		out[i] = row{ID: fmt.Sprint(r[0]), Type: fmt.Sprint(r[1]), User: fmt.Sprint(r[2]), Platform: fmt.Sprint(r[3]), Detail: fmt.Sprint(r[5])}
		switch v := r[4].(type) {
		case int64:
			out[i].TimeMicros = v
		default:
			t.Fatalf("unix_micros gave %T", v)
		}
	}
	return out
}

func firstDiff(got, want []row) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(got), len(want))
}
