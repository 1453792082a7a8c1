package batch

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// ViewInteractions is the view the recommendation job reads: implicit feedback, one row per
// event, with columns user_id, item_id, weight (DOUBLE) and event_time (TIMESTAMP).
const ViewInteractions = "interactions"

// RecommendJob is SAR (Microsoft Recommenders' Smart Adaptive Recommendations) as SQL:
// a user's affinity for an item is the sum of the weights of their interactions with it,
// each halved for every half-life between it and the reference time; items are similar as
// the users who interacted with both relate to the users of each (Jaccard, lift, cosine or
// the plain count); a user's score for an item is the sum, over the items they interacted
// with, of affinity times similarity; items the user interacted with are left out, and the
// top K are kept (ties by item id). One text for both engines.
var RecommendJob = Job{Name: "recommend", Text: `
WITH events AS (
  SELECT user_id, item_id, weight, {{micros "event_time"}} AS us FROM interactions
), affinity AS (
  SELECT user_id, item_id,
    SUM(weight * POWER(0.5, CAST({{.RefMicros}} - us AS DOUBLE) / {{.HalfLifeMicros}})) AS affinity
  FROM events GROUP BY user_id, item_id
), occurrence AS (
  SELECT item_id, CAST(COUNT(*) AS DOUBLE) AS users FROM affinity GROUP BY item_id
), cooccurrence AS (
  SELECT a.item_id AS item, b.item_id AS other, CAST(COUNT(*) AS DOUBLE) AS users
  FROM affinity a JOIN affinity b ON a.user_id = b.user_id
  GROUP BY a.item_id, b.item_id
), similarity AS (
  SELECT c.item, c.other,
{{- if eq .Similarity "jaccard"}} c.users / (oi.users + oo.users - c.users)
{{- else if eq .Similarity "lift"}} c.users / (oi.users * oo.users)
{{- else if eq .Similarity "cosine"}} c.users / SQRT(oi.users * oo.users)
{{- else}} c.users{{end}} AS similarity
  FROM cooccurrence c JOIN occurrence oi ON oi.item_id = c.item JOIN occurrence oo ON oo.item_id = c.other
), scores AS (
  SELECT a.user_id, s.other AS item_id, SUM(a.affinity * s.similarity) AS score
  FROM affinity a JOIN similarity s ON s.item = a.item_id
  GROUP BY a.user_id, s.other
), ranked AS (
  SELECT sc.user_id, sc.item_id, sc.score,
    ROW_NUMBER() OVER (PARTITION BY sc.user_id ORDER BY sc.score DESC, sc.item_id) AS rn
  FROM scores sc LEFT JOIN affinity seen ON seen.user_id = sc.user_id AND seen.item_id = sc.item_id
  WHERE seen.user_id IS NULL
)
SELECT user_id, item_id, score, CAST(rn AS BIGINT) AS rank FROM ranked WHERE rn <= {{.K}}
ORDER BY user_id, rank`}

// InteractionRow is one row of the interactions view, as Go writes it to Parquet.
type InteractionRow struct {
	UserID    string    `parquet:"user_id"`
	ItemID    string    `parquet:"item_id"`
	Weight    float64   `parquet:"weight"`
	EventTime time.Time `parquet:"event_time,timestamp(microsecond)"`
}

// Similarity is how co-occurrence counts become item similarities.
type Similarity string

// The similarities of SAR: c_ij users of both items, c_i users of item i.
const (
	Jaccard Similarity = "jaccard" // c_ij / (c_i + c_j - c_ij)
	Lift    Similarity = "lift"    // c_ij / (c_i c_j)
	Cosine  Similarity = "cosine"  // c_ij / sqrt(c_i c_j)
	Count   Similarity = "count"   // c_ij
)

// Similarities lists the accepted similarities.
var Similarities = []Similarity{Jaccard, Lift, Cosine, Count}

// Recommend are the parameters of RecommendJob.
type Recommend struct {
	Similarity Similarity
	HalfLife   time.Duration // of an interaction's weight in the affinity
	// Reference is the time of full weight: the newest interaction, as SAR takes it (an
	// earlier one would weigh newer interactions more than fully).
	Reference time.Time
	K         int // recommendations per user
}

// Scored is one recommended item and its score.
type Scored struct {
	Item  string
	Score float64
}

// Check reports what of r the job cannot run with.
func (r Recommend) Check() error {
	if !slices.Contains(Similarities, r.Similarity) {
		return fmt.Errorf("batch: similarity %q is not one of %v", r.Similarity, Similarities)
	}
	if r.HalfLife < time.Microsecond || r.K <= 0 {
		return fmt.Errorf("batch: recommend with half-life %s and k %d: want a half-life of at least 1µs and k > 0", r.HalfLife, r.K)
	}
	return nil
}

// SQL renders the job for eng.
func (r Recommend) SQL(eng Engine) (string, error) {
	if err := r.Check(); err != nil {
		return "", err
	}
	p := map[string]any{"Similarity": string(r.Similarity), "K": r.K,
		"RefMicros": r.Reference.UnixMicro(), "HalfLifeMicros": r.HalfLife.Microseconds()}
	return render(eng, RecommendJob.Name, RecommendJob.Text, p)
}

// Run runs the job on eng (the interactions view registered) and returns each user's
// recommendations, best first.
func (r Recommend) Run(ctx context.Context, eng Engine) (map[string][]Scored, error) {
	q, err := r.SQL(eng)
	if err != nil {
		return nil, err
	}
	_, rows, err := query(ctx, eng, RecommendJob.Name, q)
	if err != nil {
		return nil, err
	}
	out := map[string][]Scored{}
	for i, row := range rows {
		if len(row) != 4 {
			return nil, fmt.Errorf("batch: job %s on %s, row %d: %d columns, want 4", RecommendJob.Name, eng.Name(), i, len(row))
		}
		user, err1 := String(row[0])
		item, err2 := String(row[1])
		score, ok := row[2].(float64)
		if err1 != nil || err2 != nil || !ok {
			return nil, fmt.Errorf("batch: job %s on %s, row %d: %v is not (text, text, double, rank)", RecommendJob.Name, eng.Name(), i, row)
		}
		out[user] = append(out[user], Scored{item, score})
	}
	return out, nil
}

// InteractionsJob is the lake's implicit feedback in [From, To): every product view, cart add
// and ordered item, weighted by how much each says of a shopper's interest.
var InteractionsJob = Job{Name: "interactions", Text: `
SELECT user_id, product_id AS item_id, CAST(CASE event_type WHEN 'cart_add' THEN {{.Cart}} ELSE {{.View}} END AS DOUBLE) AS weight, event_time
FROM activity
WHERE event_type IN ('product_view', 'cart_add') AND user_id <> '' AND product_id <> '' AND {{template "range" .}}
UNION ALL
SELECT user_id, it.product_id AS item_id, CAST({{.Order}} AS DOUBLE) AS weight, event_time
FROM (
  SELECT user_id, event_time, {{explode "items"}} AS it
  FROM transactions WHERE event_type = 'order_placed' AND user_id <> '' AND {{template "range" .}}
) o
WHERE it.product_id <> ''
ORDER BY event_time, user_id, item_id, weight`}

// Weights are what each kind of interaction adds to a user's affinity for a product.
type Weights struct {
	View  float64 `yaml:"view"`
	Cart  float64 `yaml:"cart_add"`
	Order float64 `yaml:"order"`
}

// DefaultWeights: a cart add says more than a view, an order most.
var DefaultWeights = Weights{View: 1, Cart: 3, Order: 5}

// LakeInteractions are the parameters of InteractionsJob.
type LakeInteractions struct {
	From, To time.Time
	Weights  Weights
}

// Rows runs the job on eng (the lake's views registered): user, item, weight and time of
// each interaction, oldest first.
func (li LakeInteractions) Rows(ctx context.Context, eng Engine) ([][]any, error) {
	if !li.From.Before(li.To) {
		return nil, fmt.Errorf("batch: interactions over [%s, %s): an empty range", li.From.Format(time.RFC3339), li.To.Format(time.RFC3339))
	}
	p := rangeParams(li.From, li.To, map[string]any{"View": li.Weights.View, "Cart": li.Weights.Cart, "Order": li.Weights.Order})
	q, err := render(eng, InteractionsJob.Name, rangeTmpl+InteractionsJob.Text, p)
	if err != nil {
		return nil, err
	}
	_, rows, err := query(ctx, eng, InteractionsJob.Name, q)
	return rows, err
}
