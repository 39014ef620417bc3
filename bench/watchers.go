package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gorilla/websocket"
)

// watchReport is what the live watchers saw during a scenario.
type watchReport struct {
	WebSockets int `json:"ws"`
	Streams    int `json:"sse"`
	// Opened is how many watchers got their first frame; Ended how many
	// the server ended before the bench closed them (slow, refused).
	Opened int   `json:"opened"`
	Ended  int64 `json:"ended_early"`
	Frames int64 `json:"frames"`
	// FramesPerWatcherPerS is frames per open watcher per second of the
	// watch (at most 1/TALLY_LIVE_NOTICE_EVERY on a hot poll).
	FramesPerWatcherPerS float64 `json:"frames_per_watcher_per_s"`
	// AsOfLagMs is receive time minus the frame's as_of: how old the
	// counts were when they reached the client (coalescing, notice, read,
	// fan-out).
	AsOfLagMs map[string]float64 `json:"as_of_lag_ms"`
	// ServerFrames and ServerRereads are the server's own counters over
	// the watch (tally_live_frames_total, tally_live_rereads_total).
	ServerFrames  float64 `json:"server_frames"`
	ServerRereads float64 `json:"server_rereads"`
	// APIRSSStartMB and APIRSSMaxMB are the API process's resident memory
	// when the watch began and the most sampled during it: what the
	// watchers' sockets, buffers and frames cost in memory.
	APIRSSStartMB float64 `json:"api_rss_start_mb"`
	APIRSSMaxMB   float64 `json:"api_rss_max_mb"`
	// ServerCPUPerKFrameMs is the server's CPU during the watch per 1,000
	// frames delivered: an upper bound on the fan-out's cost, since the
	// votes' own CPU is in it (compare with viral at the same --rate).
	ServerCPUPerKFrameMs float64 `json:"server_cpu_ms_per_1000_frames"`
}

// watchers holds the WebSockets and event streams open on one poll.
type watchers struct {
	ws, sse int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	start   time.Time
	opened  atomic.Int64
	ended   atomic.Int64
	frames  atomic.Int64
	mu      sync.Mutex
	lag     *hdrhistogram.Histogram

	url                     string
	frames0, rereads0, cpu0 float64
	pid                     int
	// rss0 is the API's resident memory when the watch began; rssMax the
	// most sampled during it (process_resident_memory_bytes, every 500 ms).
	rss0, rssMax atomic.Int64
}

// watch opens ws WebSockets and sse event streams on pollID as owner.
func (b *bench) watch(ctx context.Context, url, pollID, owner string, ws, sse, srvPid int) *watchers {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchers{ws: ws, sse: sse, cancel: cancel, start: time.Now(), lag: hdrhistogram.New(1, 600_000, 3), url: url, pid: srvPid}
	w.frames0 = scrapeSum(b.http, url+"/metrics", "tally_live_frames_total")
	w.rereads0 = scrapeSum(b.http, url+"/metrics", "tally_live_rereads_total")
	if srvPid > 0 {
		w.cpu0 = cpuSeconds(srvPid)
	}
	w.rss0.Store(int64(scrapeSum(b.http, url+"/metrics", "process_resident_memory_bytes")))
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if v := int64(scrapeSum(b.http, url+"/metrics", "process_resident_memory_bytes")); v > w.rssMax.Load() {
				w.rssMax.Store(v)
			}
		}
	}()
	wsURL := "ws" + strings.TrimPrefix(url, "http") + "/v1/polls/" + pollID + "/live?access_token=" + owner
	sseURL := url + "/v1/polls/" + pollID + "/results/stream?access_token=" + owner
	for i := range ws + sse {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if i < ws {
				w.socket(ctx, wsURL)
			} else {
				w.stream(ctx, sseURL)
			}
		}()
	}
	return w
}

// frame records one frame's arrival.
func (w *watchers) frame(data []byte, first *bool) {
	var f struct {
		AsOf time.Time `json:"as_of"`
	}
	if json.Unmarshal(data, &f) != nil || f.AsOf.IsZero() {
		return
	}
	if !*first {
		*first = true
		w.opened.Add(1)
		return // the current results at subscribe time: not a change
	}
	w.frames.Add(1)
	w.mu.Lock()
	_ = w.lag.RecordValue(max(time.Since(f.AsOf).Milliseconds(), 0))
	w.mu.Unlock()
}

func (w *watchers) socket(ctx context.Context, url string) {
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		w.ended.Add(1)
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	first := false
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if ctx.Err() == nil {
				w.ended.Add(1)
			}
			return
		}
		w.frame(data, &first)
	}
}

func (w *watchers) stream(ctx context.Context, url string) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		if resp != nil {
			resp.Body.Close()
		}
		w.ended.Add(1)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	first := false
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			w.frame([]byte(data), &first)
		}
	}
	if ctx.Err() == nil {
		w.ended.Add(1)
	}
}

// stop closes every watcher and reports.
func (w *watchers) stop(b *bench) *watchReport {
	secs := time.Since(w.start).Seconds()
	frames := scrapeSum(b.http, w.url+"/metrics", "tally_live_frames_total") - w.frames0
	rereads := scrapeSum(b.http, w.url+"/metrics", "tally_live_rereads_total") - w.rereads0
	cpu := 0.0
	if w.pid > 0 {
		cpu = cpuSeconds(w.pid) - w.cpu0
	}
	w.cancel()
	w.wg.Wait()
	r := &watchReport{WebSockets: w.ws, Streams: w.sse, Opened: int(w.opened.Load()), Ended: w.ended.Load(),
		Frames: w.frames.Load(), ServerFrames: frames, ServerRereads: rereads,
		APIRSSStartMB: float64(w.rss0.Load()) / (1 << 20), APIRSSMaxMB: float64(w.rssMax.Load()) / (1 << 20)}
	if r.Opened > 0 && secs > 0 {
		r.FramesPerWatcherPerS = float64(r.Frames) / float64(r.Opened) / secs
	}
	if frames > 0 && cpu > 0 {
		r.ServerCPUPerKFrameMs = cpu * 1000 * 1000 / frames
	}
	if w.lag.TotalCount() > 0 {
		r.AsOfLagMs = map[string]float64{"p50": float64(w.lag.ValueAtQuantile(50)),
			"p99": float64(w.lag.ValueAtQuantile(99)), "max": float64(w.lag.Max())}
	}
	return r
}

// scrapeSum adds every series of one metric family from a Prometheus text
// endpoint.
func scrapeSum(c *http.Client, url, family string) float64 {
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	sum := 0.0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family+"{") && !strings.HasPrefix(line, family+" ") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			var v float64
			if err := json.Unmarshal([]byte(line[i+1:]), &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}
