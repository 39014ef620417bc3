//go:build integration

package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/yaml.v3"

	"github.com/tally-vote/tally/pkg/app"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/testenv"
	"github.com/tally-vote/tally/pkg/vote"
)

// syncBuffer is a zap sink the test reads while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Sync() error { return nil }

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(s.b.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestObservability runs a real process (API and worker on the local
// stack) through an async vote and a duplicate, then checks what an
// operator gets: the vote outcome lines of both stages with their stable
// keys and no voter id, the /metrics scrape against Prometheus naming and
// cardinality rules, and every metric the alert rules and the dashboard
// use being exported.
func TestObservability(t *testing.T) {
	cfg := testenv.Config(t)
	cfg.Vote.Mode = "async"
	cfg.Vote.LogSample = 1
	var buf syncBuffer
	enc := zap.NewProductionEncoderConfig() // what `tally serve` writes
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(enc), &buf, zap.InfoLevel))

	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	router, err := a.Router()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(router)
	done := make(chan error, 1)
	go func() { done <- a.RunWorker(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		a.Close()
	})

	c := testenv.NewClient(t, srv.URL)
	tok, userID := c.Account()
	pollID, opts := c.Poll(tok, nil, "yes", "no")
	const httpRID = "obs-test-7f3a"
	before := len(buf.lines()) // account and poll lines name their owner; vote lines must not
	r := c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[0]}, "X-Request-Id", httpRID).
		Must(t, http.StatusAccepted)
	requestID := r.Str("request_id")
	// The voter's flag turns from pending to queued just after the 202 (off
	// the answer's path); once the vote is recorded it surely has, and a
	// second vote is the fast 409.
	testenv.Eventually(t, 30*time.Second, func() error {
		st := c.Do("GET", "/v1/polls/"+pollID+"/votes/requests/"+requestID, tok, nil)
		if st.Str("state") != "completed" {
			return fmt.Errorf("first vote: %s", st.Raw)
		}
		return nil
	})
	c.Do("POST", "/v1/polls/"+pollID+"/votes", tok, map[string]any{"option_id": opts[1]}).Must(t, http.StatusConflict)

	var apiLine, workerLine map[string]any
	testenv.Eventually(t, 30*time.Second, func() error {
		apiLine, workerLine = nil, nil
		for _, l := range buf.lines() {
			if l["event"] != vote.OutcomeEvent || l["request_id"] != requestID {
				continue
			}
			switch l["stage"] {
			case "api":
				apiLine = l
			case "worker":
				workerLine = l
			}
		}
		if apiLine == nil || workerLine == nil {
			return fmt.Errorf("outcome lines of request %s: api %v, worker %v", requestID, apiLine != nil, workerLine != nil)
		}
		return nil
	})
	for stage, want := range map[string]struct {
		line    map[string]any
		outcome string
	}{"api": {apiLine, "accepted"}, "worker": {workerLine, "recorded"}} {
		l := want.line
		for _, k := range []string{"event", "poll_id", "request_id", "http_request_id", "outcome", "processing_ms", "duplicate"} {
			if _, ok := l[k]; !ok {
				t.Errorf("%s line lacks %q: %v", stage, k, l)
			}
		}
		if l["poll_id"] != pollID || l["outcome"] != want.outcome || l["duplicate"] != false || l["http_request_id"] != httpRID {
			t.Errorf("%s line = %v, want poll %s, outcome %s, duplicate false, http_request_id %s", stage, l, pollID, want.outcome, httpRID)
		}
		if ms, ok := l["processing_ms"].(float64); !ok || ms < 0 {
			t.Errorf("%s line processing_ms = %v", stage, l["processing_ms"])
		}
	}
	dup := false
	for _, l := range buf.lines() {
		if l["event"] == vote.OutcomeEvent && l["stage"] == "api" && l["outcome"] == "duplicate" && l["duplicate"] == true &&
			l["poll_id"] == pollID && l["error_code"] == "ALREADY_VOTED" {
			dup = true
		}
	}
	if !dup {
		t.Errorf("no duplicate outcome line for the second vote")
	}
	for _, l := range buf.lines()[before:] {
		if b, _ := json.Marshal(l); strings.Contains(string(b), userID) {
			t.Errorf("a log line names the voter %s: %s", userID, b)
		}
	}

	// Reads, a reconciliation and a failing statement, so the series of
	// those paths exist as they would in production.
	c.Do("GET", "/v1/polls/"+pollID+"/results", tok, nil).Must(t, http.StatusOK)
	if _, err := a.Reconcile(ctx, mustUUID(t, pollID), false, nil); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if err := a.CQL.Session.Query("SELECT * FROM no_such_table").Exec(); err == nil {
		t.Fatal("a query of a missing table succeeded")
	}

	// The worker exports the group's lag every 5 s: wait for the scrape
	// to carry it.
	var fams map[string]*dto.MetricFamily
	testenv.Eventually(t, 20*time.Second, func() error {
		fams = scrape(t, srv.URL)
		for _, n := range []string{"tally_worker_consumer_lag", "tally_polls_active", "tally_cassandra_query_duration_seconds"} {
			if _, ok := fams[n]; !ok {
				return fmt.Errorf("%s not exported yet", n)
			}
		}
		return nil
	})
	for _, err := range lint(fams, []string{pollID, userID, requestID}) {
		t.Error(err)
	}
	if got := sampleValue(fams["tally_polls_active"], nil); got < 1 {
		t.Errorf("tally_polls_active = %v after a recorded vote", got)
	}
	lwt := false
	for _, m := range fams["tally_cassandra_query_duration_seconds"].GetMetric() {
		if label(m, "kind") == "lwt" && label(m, "table") == "votes" && m.GetHistogram().GetSampleCount() > 0 {
			lwt = true
		}
	}
	if !lwt {
		t.Errorf("no LWT on the votes table observed in tally_cassandra_query_duration_seconds")
	}

	used := map[string][]string{}
	for _, f := range []string{"../../deploy/prometheus/tally-rules.yml", "../../deploy/grafana/tally-dashboard.json"} {
		for _, n := range metricNames(t, f) {
			used[n] = append(used[n], f)
		}
	}
	if len(used) < 20 {
		t.Fatalf("found only %d metric names in the rules and dashboard: the extraction is broken", len(used))
	}
	for n, files := range used {
		if !exported(fams, n) {
			t.Errorf("%s (used by %v) is not exported by the process", n, files)
		}
	}
}

func mustUUID(t *testing.T, s string) id.ID {
	t.Helper()
	u, err := id.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sampleValue(f *dto.MetricFamily, _ map[string]string) float64 {
	var v float64
	for _, m := range f.GetMetric() {
		v += m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	return v
}

var (
	nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	uuidRe = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	// Labels that would carry an unbounded value.
	forbiddenLabels = map[string]bool{"poll_id": true, "user_id": true, "voter_id": true, "vote_id": true,
		"request_id": true, "id": true, "path": true, "url": true, "ip": true, "email": true, "user_agent": true}
	// Units Tally's histograms measure in; a histogram of a count
	// (messages per batch) ends in _size, one of a share from 0 to 1
	// (flagged ballots of a poll) in _ratio, Prometheus's unit for ratios.
	histogramUnits = []string{"_seconds", "_bytes", "_size", "_ratio"}
)

// maxValuesPerLabel bounds how many values one label takes in a scrape of
// a test process (HTTP routes are the widest).
const maxValuesPerLabel = 40

// lint applies Prometheus naming rules and Tally's label rules to a
// scrape; secrets are values that must appear in no label.
func lint(fams map[string]*dto.MetricFamily, secrets []string) []error {
	var errs []error
	names := make([]string, 0, len(fams))
	for n := range fams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := fams[n]
		own := strings.HasPrefix(n, "tally_")
		if !own && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") && !strings.HasPrefix(n, "promhttp_") {
			errs = append(errs, fmt.Errorf("%s: not under the tally_ namespace", n))
		}
		if !nameRe.MatchString(n) {
			errs = append(errs, fmt.Errorf("%s: not snake_case", n))
		}
		if f.GetHelp() == "" {
			errs = append(errs, fmt.Errorf("%s: no help text", n))
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(n, "_total") {
				errs = append(errs, fmt.Errorf("%s: counter without _total", n))
			}
		case dto.MetricType_HISTOGRAM, dto.MetricType_SUMMARY:
			if own && !hasAnySuffix(n, histogramUnits) {
				errs = append(errs, fmt.Errorf("%s: histogram without a unit suffix %v", n, histogramUnits))
			}
		default:
			if strings.HasSuffix(n, "_total") {
				errs = append(errs, fmt.Errorf("%s: _total on a %s", n, f.GetType()))
			}
		}
		if own && (strings.Contains(n, "_milliseconds") || strings.Contains(n, "_ms")) {
			errs = append(errs, fmt.Errorf("%s: time must be in seconds", n))
		}
		values := map[string]map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if forbiddenLabels[l.GetName()] {
					errs = append(errs, fmt.Errorf("%s: unbounded label %q", n, l.GetName()))
				}
				if uuidRe.MatchString(l.GetValue()) {
					errs = append(errs, fmt.Errorf("%s: label %s carries an id %q", n, l.GetName(), l.GetValue()))
				}
				for _, s := range secrets {
					if strings.Contains(l.GetValue(), s) {
						errs = append(errs, fmt.Errorf("%s: label %s carries %q", n, l.GetName(), s))
					}
				}
				if values[l.GetName()] == nil {
					values[l.GetName()] = map[string]bool{}
				}
				values[l.GetName()][l.GetValue()] = true
			}
		}
		for l, vs := range values {
			if len(vs) > maxValuesPerLabel && l != "le" && l != "quantile" {
				errs = append(errs, fmt.Errorf("%s: label %s has %d values", n, l, len(vs)))
			}
		}
	}
	return errs
}

func hasAnySuffix(s string, suffixes []string) bool {
	for _, x := range suffixes {
		if strings.HasSuffix(s, x) {
			return true
		}
	}
	return false
}

var metricRe = regexp.MustCompile(`\b(?:tally|go|process)_[a-z0-9_]+`)

// metricNames reads every PromQL expression of a rules file or a Grafana
// dashboard and returns the metric names they select.
func metricNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	if strings.HasSuffix(path, ".json") {
		var d struct {
			Panels []struct {
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				exprs = append(exprs, tg.Expr)
			}
		}
	} else {
		var r struct {
			Groups []struct {
				Rules []struct {
					Expr string `yaml:"expr"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				exprs = append(exprs, rule.Expr)
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range exprs {
		for _, n := range metricRe.FindAllString(e, -1) {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// exported reports whether name is a family of the scrape, or a series a
// histogram family exposes (_bucket, _sum, _count).
func exported(fams map[string]*dto.MetricFamily, name string) bool {
	if _, ok := fams[name]; ok {
		return true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suf); ok {
			if f, ok := fams[base]; ok && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}
