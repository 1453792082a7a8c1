package spark

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bytebasket/bytebasket/internal/config"
	"github.com/bytebasket/bytebasket/internal/lake/hdfs"
	"github.com/bytebasket/bytebasket/internal/testenv"
	"github.com/parquet-go/parquet-go"
)

type orderRow struct {
	UserID     string    `parquet:"user_id"`
	Platform   string    `parquet:"platform"`
	TotalMinor int64     `parquet:"total_minor"`
	Currency   string    `parquet:"currency"`
	EventTime  time.Time `parquet:"event_time,timestamp(microsecond)"`
}

// Go writes Parquet files to the real HDFS; Spark, through Spark Connect from Go, aggregates
// them with SQL; the result must equal what Go computed from the rows it wrote.
func TestSparkAggregatesParquetWrittenByGo(t *testing.T) {
	hdfsAddr := testenv.Addr(t, testenv.HDFS)
	sparkAddr := testenv.Addr(t, testenv.Spark)
	ctx := context.Background()

	lakeCfg := config.Default().Lake
	lakeCfg.HDFS.Namenodes = []string{hdfsAddr}
	lakeCfg.Root = fmt.Sprintf("/it/spark-%d", time.Now().UnixNano())
	lake, err := hdfs.Open(lakeCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lake.RemoveAll(ctx, "/"); lake.Close() }()

	type agg struct{ orders, revenue int64 }
	want := map[string]agg{}
	rng := rand.New(rand.NewPCG(1, 2))
	platforms := []string{"android", "ios", "web"}
	for f := range 3 { // three files: Spark must read the directory, not one file
		rows := make([]orderRow, 2000)
		for i := range rows {
			p := platforms[rng.IntN(3)]
			rows[i] = orderRow{fmt.Sprintf("u-%d", rng.IntN(500)), p, int64(rng.IntN(50_000)), "USD",
				time.Date(2026, 11, 24, 10, 0, i, 0, time.UTC)}
			a := want[p]
			a.orders++
			a.revenue += rows[i].TotalMinor
			want[p] = a
		}
		name := fmt.Sprintf("orders/date=2026-11-24/orders-%d.parquet", f)
		if err := lake.WriteAtomic(ctx, name, func(w io.Writer) error {
			return parquet.Write(w, rows, parquet.Compression(&parquet.Zstd))
		}); err != nil {
			t.Fatal(err)
		}
	}

	cfg := config.Default().Spark
	cfg.Remote = "sc://" + sparkAddr
	cfg.LakeURI = "hdfs://" + hdfsAddr + lakeCfg.Root
	eng, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	cols, rows, err := eng.Query(ctx, fmt.Sprintf(
		"SELECT platform, COUNT(*) AS orders, SUM(total_minor) AS revenue FROM parquet.`%s` GROUP BY platform ORDER BY platform",
		eng.LakePath("orders")))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(cols) != "[platform orders revenue]" || len(rows) != 3 {
		t.Fatalf("columns %v, %d rows: %v", cols, len(rows), rows)
	}
	for _, r := range rows {
		p, orders, revenue := r[0].(string), r[1].(int64), r[2].(int64)
		if w := want[p]; orders != w.orders || revenue != w.revenue {
			t.Errorf("%s: Spark says %d orders, %d revenue; Go wrote %d, %d", p, orders, revenue, w.orders, w.revenue)
		}
	}
}
