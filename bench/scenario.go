package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tally-vote/tally/pkg/auth"
	"github.com/tally-vote/tally/pkg/id"
	"github.com/tally-vote/tally/pkg/kafkax"
)

// plan describes one scenario.
type plan struct {
	Name  string
	Mode  string // async or sync
	Polls int
	// RetryShare of requests resubmit an earlier voter's vote: half with
	// the same Idempotency-Key, half with a different one.
	RetryShare float64
	// Rate overrides the run's --rate (steady, overload).
	Rate float64
	// Ladder, when set, offers these rates one after another for the run's
	// duration each, stopping after the first step whose p99 crosses
	// StopP99 (burst).
	Ladder  []float64
	StopP99 time.Duration
	// AcceptOnly serves votes with no worker running (`serve
	// --with-worker=false`), so the API's CPU per accepted vote is measured
	// alone; a `tally worker` process drains the backlog after the load.
	AcceptOnly bool
	// Watch holds live watchers open on the hot poll (200 WebSockets and
	// 200 streams unless --ws-watchers / --sse-watchers say otherwise).
	Watch bool
	// Webhooks are registered on every poll before the load (webhook-hang),
	// and the server's delivery figures read when it ends.
	Webhooks []string
	// Pair runs the scenario twice, without and then with webhooks
	// (webhook-hang).
	Pair bool
}

// step is one rung of a ladder.
type step struct {
	OfferedPerS  float64            `json:"offered_per_s"`
	AchievedPerS float64            `json:"achieved_2xx_per_s"`
	Sent         int                `json:"sent"`
	Accepted     int64              `json:"accepted"`
	Shed         int                `json:"shed"`
	Codes        map[string]int     `json:"codes"`
	LatencyMs    map[string]float64 `json:"latency_ms"`
	// Counts is true when at least 99 % of the offered votes were
	// accepted: only then may the step's CPU ratio be cited, so that
	// shedding cannot improve it.
	Counts bool `json:"counts"`
	// APICPUMicros is the API process's CPU per accepted vote during the
	// step, with its idle cost under the sampler subtracted (accept-only
	// scenarios: no worker in the process).
	APICPUMicros float64 `json:"api_cpu_us_per_accepted,omitempty"`
	// LoadgenCPUMicros is the bench's own CPU per request sent.
	LoadgenCPUMicros float64 `json:"loadgen_cpu_us_per_req"`
}

// minAcceptedShare is the share of offered votes a step must accept for
// its figures to count.
const minAcceptedShare = 0.99

// cast is one accepted (2xx) submission.
type cast struct {
	pollIdx     int
	poll, voter id.ID
	key         string
	requestID   string
}

type pollInfo struct {
	id      id.ID
	options []string
	owner   string
}

// sample is one point of the run's timeline.
type sample struct {
	T        float64 `json:"t_s"`
	Accepted int64   `json:"accepted"`
	Live     int64   `json:"live_total"`
	Recorded float64 `json:"recorded_rows"`
	Lag      int64   `json:"consumer_lag"`
}

func (b *bench) mint(id id.ID) string {
	t, err := b.tokens.Issue(auth.Principal{UserID: id})
	if err != nil {
		panic(err) // HMAC signing cannot fail with a non-empty key
	}
	return t.AccessToken
}

func (b *bench) do(method, url, token string, body []byte, key string) (int, map[string]any) {
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := b.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

func (b *bench) createPolls(url string, n int) ([]pollInfo, error) {
	polls := make([]pollInfo, n)
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
		ferr atomic.Value
	)
	for i := range polls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			owner := b.mint(id.New())
			body, _ := json.Marshal(map[string]any{"title": fmt.Sprintf("bench %s #%d", b.runID, i),
				"options":  []map[string]any{{"text": "Go"}, {"text": "Rust"}, {"text": "Zig"}, {"text": "C"}},
				"settings": map[string]any{"bot_policy": b.botPolicy}})
			st, m := b.do("POST", url+"/v1/polls", owner, body, "")
			if st != http.StatusCreated {
				ferr.Store(fmt.Errorf("create poll: status %d %v", st, m))
				return
			}
			id, _ := id.Parse(m["poll_id"].(string))
			var opts []string
			for _, o := range m["options"].([]any) {
				opts = append(opts, o.(map[string]any)["option_id"].(string))
			}
			polls[i] = pollInfo{id: id, options: opts, owner: owner}
		}()
	}
	wg.Wait()
	if err, ok := ferr.Load().(error); ok {
		return nil, err
	}
	return polls, nil
}

// runScenario drives one scenario end to end: polls, open-loop load,
// timeline sampling, drain, and the correctness verdict.
func (b *bench) runScenario(ctx context.Context, p plan) (*scenarioReport, error) {
	b.settle(ctx, "scenario "+p.Name)
	loadAtStart := readLoadAvg()
	url := b.url
	var srvPid int
	if b.binary != "" {
		var args []string
		if p.AcceptOnly {
			args = []string{"--with-worker=false"}
		}
		srv, err := b.spawn(ctx, p.Mode, args...)
		if err != nil {
			return nil, err
		}
		defer srv.stop()
		url, srvPid = srv.url, srv.pid()
	}
	polls, err := b.createPolls(url, p.Polls)
	if err != nil {
		return nil, err
	}
	var hooks *webhookReport
	if len(p.Webhooks) > 0 {
		if err := b.registerWebhooks(url, polls, p.Webhooks); err != nil {
			return nil, err
		}
		hooks = &webhookReport{LanesAtStart: b.waitBusy(ctx, url)}
	}
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(len(polls)-1))
	var zmu sync.Mutex
	pick := func() int {
		if len(polls) == 1 {
			return 0
		}
		zmu.Lock()
		defer zmu.Unlock()
		return int(zipf.Uint64())
	}

	rate := b.rate
	if p.Rate > 0 {
		rate = p.Rate
	}
	rates := p.Ladder
	if len(rates) == 0 {
		rates = []float64{rate}
	}
	n := 0
	for _, r := range rates {
		n += int(r * b.durationOf(p.Name).Seconds())
	}
	slots := make([]cast, n)
	var (
		mu         sync.Mutex
		accepted   []cast
		maybe      []cast       // shed with "may still be recorded"
		hot        atomic.Int64 // unique voters accepted on polls[0]
		mismatches atomic.Int64 // same-key retries answered with another request id
	)
	procs := findProcs(map[string]int{"tally": srvPid})
	cpu0 := map[string]float64{}
	for k, pid := range procs {
		cpu0[k] = cpuSeconds(pid)
	}

	alloc0 := scrapeCounter(b.http, url+"/metrics", "go_memstats_alloc_bytes_total")
	sampler := b.sample(ctx, url, polls[0], &hot, p.Mode == "async")
	nws, nsse := b.wsWatchers, b.sseWatchers
	if p.Watch && nws == 0 && nsse == 0 {
		nws, nsse = 200, 200
	}
	var watch *watchers
	if nws+nsse > 0 {
		watch = b.watch(ctx, url, polls[0].id.String(), polls[0].owner, nws, nsse, srvPid)
	}
	// The API's cost with nothing but the sampler (and any watchers)
	// running, per second: subtracted from each step, reported on its own.
	var idleCores float64
	if p.AcceptOnly && srvPid > 0 && b.idleSample > 0 {
		c := cpuSeconds(srvPid)
		time.Sleep(b.idleSample)
		idleCores = (cpuSeconds(srvPid) - c) / b.idleSample.Seconds()
	}
	loadCPU0 := cpuSeconds(srvPid)
	origin := time.Now()
	fire := func(i int) result {
		// A retry resubmits an earlier slot's voter: same key (must get the
		// same request id back) or another key (must not vote twice).
		orig := -1
		if p.RetryShare > 0 && i > 10 && rand.Float64() < p.RetryShare {
			orig = i - 1 - rand.IntN(min(i-1, 100))
		}
		mu.Lock()
		var s cast
		if orig >= 0 && slots[orig].voter != (id.ID{}) {
			s = slots[orig]
			if rand.IntN(2) == 1 {
				s.key = "other-" + strconv.Itoa(i)
			}
		} else {
			orig = -1
			s = cast{pollIdx: pick(), voter: id.New(), key: b.runID + "-" + strconv.Itoa(i)}
			s.poll = polls[s.pollIdx].id
			slots[i] = s
		}
		mu.Unlock()
		opts := polls[s.pollIdx].options
		body := []byte(`{"option_id":"` + opts[int(s.voter[0])%len(opts)] + `"}`)
		st, m := b.do("POST", url+"/v1/polls/"+s.poll.String()+"/votes", b.mint(s.voter), body, s.key)
		r := result{status: st}
		if e, ok := m["error"].(map[string]any); ok {
			r.code, _ = e["code"].(string)
			// A vote shed after its produce was sent may still be
			// recorded (vote.ErrShed says so); the verdict asks again with
			// the same key, as a client would.
			if msg, _ := e["message"].(string); r.code == "OVERLOADED" && strings.Contains(msg, "may still be recorded") {
				mu.Lock()
				maybe = append(maybe, s)
				mu.Unlock()
			}
		}
		if st != http.StatusOK && st != http.StatusAccepted {
			return r
		}
		s.requestID, _ = m["request_id"].(string)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case orig < 0:
			slots[i].requestID = s.requestID
			if s.pollIdx == 0 {
				hot.Add(1)
			}
		case s.key == slots[orig].key && slots[orig].requestID != "" && s.requestID != slots[orig].requestID:
			mismatches.Add(1)
		}
		accepted = append(accepted, s)
		return r
	}
	stats, steps := newLoadStats(), []step(nil)
	offset := 0
	for _, r := range rates {
		k := int(r * b.durationOf(p.Name).Seconds())
		if len(rates) > 1 {
			b.logf("%s: %.0f votes/s for %s", p.Name, r, b.durationOf(p.Name))
		}
		base := offset
		api0, gen0 := cpuSeconds(srvPid), cpuSeconds(os.Getpid())
		st := openLoop(ctx, origin, b.warmup, r, k, b.maxInFlight, func(i int) result { return fire(base + i) })
		api, gen := cpuSeconds(srvPid)-api0, cpuSeconds(os.Getpid())-gen0
		offset += k
		stats.merge(st)
		secs := st.end.Sub(st.start).Seconds()
		sp := step{OfferedPerS: r, Sent: st.sent, Accepted: st.ok.TotalCount(), Shed: st.codes["OVERLOADED"], Codes: st.codes,
			AchievedPerS: float64(st.ok.TotalCount()) / secs,
			LatencyMs: map[string]float64{"p50": ms(st.hist.ValueAtQuantile(50)), "p99": ms(st.hist.ValueAtQuantile(99)),
				"ok_p99": ms(st.ok.ValueAtQuantile(99)), "ok_p99_after_warmup": ms(st.okWarm.ValueAtQuantile(99))}}
		sp.Counts = float64(sp.Accepted) >= minAcceptedShare*float64(k)
		if st.sent > 0 {
			sp.LoadgenCPUMicros = gen * 1e6 / float64(st.sent)
		}
		if p.AcceptOnly && srvPid > 0 && sp.Accepted > 0 {
			sp.APICPUMicros = max(api-idleCores*secs, 0) * 1e6 / float64(sp.Accepted)
		}
		steps = append(steps, sp)
		if p.StopP99 > 0 && time.Duration(st.hist.ValueAtQuantile(99))*time.Microsecond > p.StopP99 {
			b.logf("%s: p99 %.1f ms at %.0f/s crossed %s; stopping the ladder", p.Name, sp.LatencyMs["p99"], r, p.StopP99)
			break
		}
	}
	b.logf("%s: load done, %d sent; draining", p.Name, stats.sent)
	if hooks != nil {
		hooks.fill(b.http, url+"/metrics")
	}
	var watched *watchReport
	if watch != nil {
		watched = watch.stop(b)
	}
	var acceptCPU, acceptAlloc float64
	if p.AcceptOnly && srvPid > 0 {
		acceptCPU = max(cpuSeconds(srvPid)-loadCPU0-idleCores*stats.end.Sub(stats.start).Seconds(), 0)
		acceptAlloc = scrapeCounter(b.http, url+"/metrics", "go_memstats_alloc_bytes_total") - alloc0
		w, err := b.spawnWorker(b.drainConcurrency())
		if err != nil {
			return nil, err
		}
		defer w.stop()
		procs["worker"] = w.pid()
		sampler.addMetrics(w.url + "/metrics")
	}
	drainStart := time.Now()
	if p.Mode == "async" {
		b.waitDrained(ctx)
	}
	drainEnd := time.Now()
	timeline := sampler.stop()

	cpu := map[string]float64{}
	wall := drainEnd.Sub(stats.start).Seconds()
	for k, pid := range procs {
		cpu[k] = (cpuSeconds(pid) - cpu0[k]) / wall
	}
	rep := b.report(p, stats, timeline, accepted, drainEnd.Sub(drainStart), cpu)
	rep.OfferedPerS, rep.Steps = rates[len(steps)-1], steps
	rep.LoadAtStart, rep.IdleAPICores, rep.WarmupS = loadAtStart, idleCores, b.warmup.Seconds()
	rep.Drainer = "the worker inside the API process, adaptive up to TALLY_WORKER_CONCURRENCY, yielding to the API under pressure"
	if p.AcceptOnly {
		rep.Drainer = fmt.Sprintf("a separate worker process at concurrency %d, the API idle", b.drainConcurrency())
	}
	rep.PerSecond = perSecondSeries(stats, timeline, origin.Sub(sampler.start).Seconds())
	if n := stats.ok.TotalCount(); acceptCPU > 0 && n > 0 {
		rep.AcceptCPUMicros = acceptCPU * 1e6 / float64(n)
		rep.AcceptAllocBytes = acceptAlloc / float64(n)
	}
	rep.Watch = watched
	rep.Webhooks = hooks
	rep.Verdict = b.verdict(ctx, url, polls, accepted, maybe, mismatches.Load())
	return rep, nil
}

type sampler struct {
	start time.Time
	// metrics are the /metrics URLs whose recorded votes are summed: the
	// API's, and a separate worker's once one runs.
	mu      sync.Mutex
	metrics []string
	stopc   chan struct{}
	done    chan []sample
}

// sample records, every 250 ms, accepted votes on the hot poll, its live
// total, rows recorded by the server and the consumer lag.
func (b *bench) sample(ctx context.Context, url string, hotPoll pollInfo, hot *atomic.Int64, async bool) *sampler {
	s := &sampler{start: time.Now(), metrics: []string{url + "/metrics"}, stopc: make(chan struct{}), done: make(chan []sample, 1)}
	go func() {
		var out []sample
		start := s.start
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				s.done <- out
				return
			case <-t.C:
			}
			sm := sample{T: time.Since(start).Seconds(), Accepted: hot.Load()}
			if st, m := b.do("GET", url+"/v1/polls/"+hotPoll.id.String()+"/results", hotPoll.owner, nil, ""); st == 200 {
				v, _ := m["total_votes"].(float64)
				sm.Live = int64(v)
			}
			s.mu.Lock()
			urls := s.metrics
			s.mu.Unlock()
			for _, u := range urls {
				sm.Recorded += scrapeCounter(b.http, u, `tally_votes_total{outcome="recorded"}`)
			}
			if async {
				if lag, err := kafkax.GroupLag(ctx, b.kafkaCfg(), b.topic("votes"), "tally-bench-"+b.runID); err == nil {
					for _, n := range lag {
						sm.Lag += n
					}
				}
			}
			out = append(out, sm)
		}
	}()
	return s
}

// addMetrics adds a process whose recorded votes count from now on.
func (s *sampler) addMetrics(url string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics = append(s.metrics[:len(s.metrics):len(s.metrics)], url)
}

func (s *sampler) stop() []sample {
	close(s.stopc)
	return <-s.done
}

// waitDrained waits until the worker group has committed everything.
func (b *bench) waitDrained(ctx context.Context) {
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		lag, err := kafkax.GroupLag(ctx, b.kafkaCfg(), b.topic("votes"), "tally-bench-"+b.runID)
		total := int64(0)
		for _, n := range lag {
			total += n
		}
		if err == nil && total == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.logf("drain did not finish within 15 minutes")
}

// scrapeCounter reads one sample from a Prometheus text endpoint.
func scrapeCounter(c *http.Client, url, series string) float64 {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(line[len(series):]), 64)
			return v
		}
	}
	return 0
}
