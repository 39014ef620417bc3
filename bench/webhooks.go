package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The webhook-hang scenario (issue 23: "a receiver that hangs does not
// change the vote path's p99"): the same steady open-loop load twice,
// each against its own spawned server with the same settings — first with
// no webhooks (baseline), then with hangingPerPoll webhooks per bench poll
// pointing at a receiver that accepts connections and never answers and
// slowPerPoll at one that answers after slowAnswer. The accepted p99s
// after warm-up are compared.
const (
	hangingPerPoll = 3
	slowPerPoll    = 2
	slowAnswer     = 2 * time.Second
)

// webhookReport is the hooked phase's comparison with its baseline and
// the server's delivery figures at the end of the load.
type webhookReport struct {
	Hanging         int     `json:"hanging_webhooks"`
	Slow            int     `json:"slow_webhooks"`
	SlowAnswerS     float64 `json:"slow_answer_s"`
	BaselineP99Ms   float64 `json:"baseline_accepted_p99_after_warmup_ms"`
	HookedP99Ms     float64 `json:"hooked_accepted_p99_after_warmup_ms"`
	Ratio           float64 `json:"p99_ratio"`
	BaselineLoadOne float64 `json:"baseline_load1_at_start"`
	AttemptsOK      float64 `json:"attempts_ok"`
	AttemptsFailed  float64 `json:"attempts_failed"`
	Delivered       float64 `json:"delivered"`
	GivenUp         float64 `json:"given_up"`
	InFlight        float64 `json:"in_flight_at_end"`
	PendingEvents   float64 `json:"pending_events_at_end"`
	Lanes           float64 `json:"lanes_at_end"`
	// LanesAtStart is tally_webhook_lanes when the load began: above 0,
	// deliveries (the polls' poll.created) were under way before it.
	LanesAtStart    float64 `json:"lanes_at_load_start"`
	HangConnections int     `json:"hang_receiver_connections"`
	SlowRequests    int     `json:"slow_receiver_requests"`
	EventsPublished float64 `json:"results_changed_published"`
}

// webhookSeries are the server's /metrics series the report reads.
var webhookSeries = map[string]string{
	"attempt_ok":     `tally_webhook_deliveries_total{result="attempt_ok"}`,
	"attempt_failed": `tally_webhook_deliveries_total{result="attempt_failed"}`,
	"delivered":      `tally_webhook_deliveries_total{result="delivered"}`,
	"given_up":       `tally_webhook_deliveries_total{result="given_up"}`,
	"in_flight":      `tally_webhook_in_flight`,
	"pending":        `tally_webhook_pending_events`,
	"lanes":          `tally_webhook_lanes`,
	"published":      `tally_events_total{result="published",type="results.changed"}`,
}

// parseSeries reads the named samples from a Prometheus text exposition;
// absent ones are 0.
func parseSeries(r io.Reader, series map[string]string) map[string]float64 {
	want := map[string]string{}
	for k, s := range series {
		want[s] = k
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if i < 0 || strings.HasPrefix(line, "#") {
			continue
		}
		if k, ok := want[line[:i]]; ok {
			out[k], _ = strconv.ParseFloat(line[i+1:], 64)
		}
	}
	return out
}

// fill reads the delivery figures from a server's /metrics.
func (w *webhookReport) fill(c *http.Client, metricsURL string) {
	resp, err := c.Get(metricsURL)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	m := parseSeries(resp.Body, webhookSeries)
	w.AttemptsOK, w.AttemptsFailed, w.Delivered, w.GivenUp = m["attempt_ok"], m["attempt_failed"], m["delivered"], m["given_up"]
	w.InFlight, w.PendingEvents, w.Lanes, w.EventsPublished = m["in_flight"], m["pending"], m["lanes"], m["published"]
}

// waitBusy waits up to 30 s for the server's delivery process to have
// lanes open (the polls' poll.created going to the new webhooks), so the
// load is measured with deliveries under way, and answers the lanes seen.
func (b *bench) waitBusy(ctx context.Context, url string) float64 {
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := scrapeCounter(b.http, url+"/metrics", webhookSeries["lanes"])
		if n > 0 || time.Now().After(deadline) || ctx.Err() != nil {
			if n == 0 {
				b.logf("no webhook lane open after 30 s: the load starts with no delivery under way")
			}
			return n
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// compare sets the baseline's and the hooked phase's p99 and their ratio.
func (w *webhookReport) compare(base, hooked *scenarioReport) {
	w.BaselineP99Ms = base.LatencyMs["accepted_p99_after_warmup"]
	w.HookedP99Ms = hooked.LatencyMs["accepted_p99_after_warmup"]
	w.BaselineLoadOne = base.LoadAtStart.One
	if w.BaselineP99Ms > 0 {
		w.Ratio = w.HookedP99Ms / w.BaselineP99Ms
	}
}

func (w *webhookReport) String() string {
	return fmt.Sprintf("accepted p99 after warm-up: baseline %.1f ms, with %d hanging + %d slow (%s) webhooks %.1f ms: ratio %.2f\n"+
		"  webhook deliveries at the end of the load: attempts %.0f ok + %.0f failed, delivered %.0f, given up %.0f, in flight %.0f, "+
		"pending events %.0f, lanes %.0f (%.0f at the load's start); results.changed published %.0f; hanging receiver held %d connections, slow one answered %d",
		w.BaselineP99Ms, w.Hanging, w.Slow, time.Duration(w.SlowAnswerS*float64(time.Second)), w.HookedP99Ms, w.Ratio,
		w.AttemptsOK, w.AttemptsFailed, w.Delivered, w.GivenUp, w.InFlight, w.PendingEvents, w.Lanes, w.LanesAtStart, w.EventsPublished,
		w.HangConnections, w.SlowRequests)
}

// receivers are the hanging and the slow webhook endpoints on 127.0.0.1.
type receivers struct {
	hang     net.Listener
	slow     *http.Server
	slowLn   net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted int
	answered int
}

// startReceivers listens on two loopback ports: one accepts connections
// and never answers (nor reads past what the kernel buffers), the other
// answers 204 after delay.
func startReceivers(delay time.Duration) (*receivers, error) {
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	slowLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		hang.Close()
		return nil, err
	}
	r := &receivers{hang: hang, slowLn: slowLn}
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.accepted++
			r.mu.Unlock()
		}
	}()
	r.slow = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
		r.mu.Lock()
		r.answered++
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = r.slow.Serve(slowLn) }()
	return r, nil
}

func (r *receivers) hangURL() string { return "http://" + r.hang.Addr().String() + "/hook" }
func (r *receivers) slowURL() string { return "http://" + r.slowLn.Addr().String() + "/hook" }

func (r *receivers) counts() (accepted, answered int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted, r.answered
}

func (r *receivers) stop() {
	_ = r.hang.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.slow.Shutdown(ctx)
	_ = r.slow.Close()
}

// registerWebhooks registers each URL on each poll as its owner.
func (b *bench) registerWebhooks(url string, polls []pollInfo, urls []string) error {
	for _, p := range polls {
		for _, u := range urls {
			body, _ := json.Marshal(map[string]any{"url": u})
			if st, m := b.do("POST", url+"/v1/polls/"+p.id.String()+"/webhooks", p.owner, body, ""); st != http.StatusCreated {
				return fmt.Errorf("register webhook %s on poll %s: status %d %v", u, p.id, st, m)
			}
		}
	}
	return nil
}

// runWebhookHang runs p's load as a baseline with no webhooks, then again
// with the hanging and slow webhooks on every poll, and answers both
// reports, the second carrying the comparison.
func (b *bench) runWebhookHang(ctx context.Context, p plan) ([]*scenarioReport, error) {
	rcv, err := startReceivers(slowAnswer)
	if err != nil {
		return nil, err
	}
	defer rcv.stop()
	base, err := b.runScenario(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	base.Name = p.Name + "-baseline"
	hooked := p
	for range hangingPerPoll {
		hooked.Webhooks = append(hooked.Webhooks, rcv.hangURL())
	}
	for range slowPerPoll {
		hooked.Webhooks = append(hooked.Webhooks, rcv.slowURL())
	}
	rep, err := b.runScenario(ctx, hooked)
	if err != nil {
		return nil, fmt.Errorf("with webhooks: %w", err)
	}
	rep.Name = p.Name + "-hooked"
	w := rep.Webhooks
	w.Hanging, w.Slow, w.SlowAnswerS = hangingPerPoll*p.Polls, slowPerPoll*p.Polls, slowAnswer.Seconds()
	w.HangConnections, w.SlowRequests = rcv.counts()
	w.compare(base, rep)
	return []*scenarioReport{base, rep}, nil
}
