//go:build multidc

package multidc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/cassandra"
	"github.com/tally-vote/tally/pkg/kafkax"
	"github.com/tally-vote/tally/pkg/testenv"
)

// The two regions of deploy/local/multidc: each has a local DC (its
// Cassandra node), its own Redis, and its own topics and consumer group on
// the shared Kafka.
var regionSpecs = []struct{ name, dc, addr string }{
	{"a", "dc1", "127.0.0.2"},
	{"b", "dc2", "127.0.0.3"},
}

const replication = "{'class': 'NetworkTopologyStrategy', 'dc1': 1, 'dc2': 1}"

// serialConsistency is the regions' LWT serial consistency: SERIAL (the
// cross-region safeguard, the default) or LOCAL_SERIAL (the safeguard off;
// the race test must then fail).
func serialConsistency() string {
	if s := os.Getenv("TALLY_MULTIDC_SERIAL"); s != "" {
		return strings.ToUpper(s)
	}
	return "SERIAL"
}

// regionDrains reports whether the regions record their drain points and
// wait for each other's before a freeze (the default), or not
// (TALLY_MULTIDC_REGION_DRAINS=off: the safeguard off; the freeze test must
// then fail).
func regionDrains() bool { return os.Getenv("TALLY_MULTIDC_REGION_DRAINS") != "off" }

// region is one running `tally serve`.
type region struct {
	name, dc string
	c        *testenv.Client
	kafka    kafkax.Config
	cmd      *exec.Cmd
	out      *syncBuffer
}

type cluster struct {
	regions []*region
	cass    cassandra.Config
}

// newCluster migrates a fresh keyspace replicated to both DCs and starts one
// `tally serve` (API + worker) per region on it; env overrides the
// regions' settings.
func newCluster(t *testing.T, env ...map[string]string) *cluster {
	t.Helper()
	cass := testenv.CassandraConfig()
	cass.Hosts = []string{"127.0.0.2:9042", "127.0.0.3:9042"}
	cass.Replication = replication
	cass.LocalDC = "dc1"
	cass.SerialConsistency = "SERIAL"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cassandra.Migrate(ctx, cass, zap.NewNop()); err != nil {
		t.Fatalf("migrate on the two-DC cluster (run `make up-2dc`): %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cassandra.DropKeyspace(ctx, cass); err != nil {
			t.Logf("drop keyspace %s: %v", cass.Keyspace, err)
		}
	})
	bin := testenv.Binary(t)
	cl := &cluster{cass: cass}
	for _, s := range regionSpecs {
		cl.regions = append(cl.regions, startRegion(t, bin, cass, s.name, s.dc, s.addr, env...))
	}
	for _, r := range cl.regions {
		r.waitReady(t)
	}
	t.Logf("regions up on keyspace %s with serial consistency %s", cass.Keyspace, serialConsistency())
	return cl
}

func startRegion(t *testing.T, bin string, cass cassandra.Config, name, dc, addr string, overrides ...map[string]string) *region {
	t.Helper()
	k := testenv.Kafka(t)
	httpAddr := freeAddr(t, addr)
	env := map[string]string{
		"TALLY_ENV":                            "dev",
		"TALLY_LOG_LEVEL":                      "warn",
		"TALLY_HTTP_ADDR":                      httpAddr,
		"TALLY_JWT_SECRET":                     "multidc-test-secret-0123456789abcdef",
		"TALLY_CASSANDRA_HOSTS":                strings.Join(cass.Hosts, ","),
		"TALLY_CASSANDRA_KEYSPACE":             cass.Keyspace,
		"TALLY_CASSANDRA_REPLICATION":          replication,
		"TALLY_CASSANDRA_LOCAL_DC":             dc,
		"TALLY_CASSANDRA_SERIAL_CONSISTENCY":   serialConsistency(),
		"TALLY_CASSANDRA_RECONNECT_INTERVAL":   "1s",
		"TALLY_REDIS_ADDR":                     addr + ":6380",
		"TALLY_KAFKA_BROKERS":                  strings.Join(k.Brokers, ","),
		"TALLY_KAFKA_VOTES_TOPIC":              k.VotesTopic,
		"TALLY_KAFKA_DLQ_TOPIC":                k.DLQTopic,
		"TALLY_KAFKA_RECONCILE_TOPIC":          k.ReconcileTopic,
		"TALLY_KAFKA_GROUP":                    k.Group,
		"TALLY_KAFKA_VOTES_PARTITIONS":         strconv.Itoa(k.VotesPartitions),
		"TALLY_VOTE_MODE":                      "async",
		"TALLY_AUTH_BCRYPT_COST":               "4",
		"TALLY_RATE_DISABLE_PER_IP":            "true",
		"TALLY_RATE_VOTES_PER_MINUTE_PER_USER": "1000",
		"TALLY_RATE_POLL_CREATE_PER_HOUR":      "1000",
		"TALLY_POLL_CACHE_TTL":                 "200ms",
		"TALLY_RESULTS_LIVE_CACHE_TTL":         "200ms",
		"TALLY_RESULTS_FINAL_CACHE_TTL":        "200ms",
		"TALLY_RECONCILE_INTERVAL":             "1h",
		"TALLY_RECONCILE_GROUP":                "multidc-reconciler-" + name + "-" + k.Group,
		"TALLY_RECONCILE_FINALIZE_DELAY":       "2s",
	}
	if regionDrains() {
		env["TALLY_REGION"] = name
	}
	for _, o := range overrides {
		maps.Copy(env, o)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = os.Environ()
	for key, v := range env {
		cmd.Env = append(cmd.Env, key+"="+v)
	}
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start region %s: %v", name, err)
	}
	r := &region{name: name, dc: dc, c: testenv.NewClient(t, "http://"+httpAddr), kafka: k, cmd: cmd, out: out}
	r.c.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("region %s output (last 4 KiB):\n%s", name, r.out.tail(4096))
		}
	})
	return r
}

func (r *region) waitReady(t *testing.T) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, func() error {
		resp, err := r.c.HTTP.Get(r.c.Base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("region %s /readyz %d", r.name, resp.StatusCode)
		}
		return nil
	})
}

// drained waits until the region's worker group has committed every vote
// message: follow-ups run before the commit, so the region's work is done.
func (r *region) drained(t *testing.T, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		lag, err := kafkax.GroupLag(ctx, r.kafka, r.kafka.VotesTopic, r.kafka.Group)
		if err != nil {
			return err
		}
		var sum int64
		for _, l := range lag {
			sum += l
		}
		if sum != 0 {
			return fmt.Errorf("region %s: %d vote messages not committed", r.name, sum)
		}
		return nil
	})
}

// workerResults reads the region's tally_worker_messages_total by result.
func (r *region) workerResults(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := r.c.HTTP.Get(r.c.Base + "/metrics")
	if err != nil {
		t.Fatalf("region %s metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("region %s metrics: %v", r.name, err)
	}
	// Lines look like: tally_worker_messages_total{result="recorded"} 42
	const prefix = `tally_worker_messages_total{result="`
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		label, value, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("region %s metrics line %q: %v", r.name, line, err)
		}
		out[label] = v
	}
	return out
}

// vote sends one ballot and returns the answer and how long it took.
func (r *region) vote(t *testing.T, token, pollID, optionID string) (testenv.Response, time.Duration) {
	t0 := time.Now()
	resp := r.c.Do("POST", "/v1/polls/"+pollID+"/votes", token, map[string]any{"option_id": optionID})
	return resp, time.Since(t0)
}

// status returns a request's state and, when it failed, its error code.
func (r *region) status(t *testing.T, token, pollID, requestID string) (string, string) {
	resp := r.c.Do("GET", "/v1/polls/"+pollID+"/votes/requests/"+requestID, token, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("region %s status of %s: %d %s", r.name, requestID, resp.Status, resp.Raw)
	}
	code := ""
	if e, ok := resp.Body["error"].(map[string]any); ok {
		code, _ = e["code"].(string)
	}
	return resp.Str("state"), code
}

// expectConverged checks that both regions serve the same live and final
// results, with the wanted total.
func (cl *cluster) expectConverged(t *testing.T, owner, pollID string, total int64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		var first map[string]int64
		for _, r := range cl.regions {
			for _, mode := range []string{"live", "final"} {
				resp := r.c.Do("GET", "/v1/polls/"+pollID+"/results?tally="+mode, owner, nil)
				if resp.Status != http.StatusOK {
					return fmt.Errorf("region %s %s: %d %s", r.name, mode, resp.Status, resp.Raw)
				}
				got := map[string]int64{"total": int64(resp.Body["total_votes"].(float64))}
				for _, o := range resp.Body["options"].([]any) {
					m := o.(map[string]any)
					got[m["option_id"].(string)] = int64(m["votes"].(float64))
				}
				if got["total"] != total {
					return fmt.Errorf("region %s %s total %d, want %d (%v)", r.name, mode, got["total"], total, got)
				}
				if first == nil {
					first = got
				} else if fmt.Sprint(first) != fmt.Sprint(got) {
					return fmt.Errorf("region %s %s %v differs from %v", r.name, mode, got, first)
				}
			}
		}
		return nil
	})
}

// bothRegionsAtOnce calls send(i, ri, r) for every voter i < voters and
// every region, releasing each voter's requests to the regions at the
// same instant, 16 voters in flight; it returns when all are answered.
func (cl *cluster) bothRegionsAtOnce(voters int, send func(i, ri int, r *region)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range voters {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := make(chan struct{})
			var inner sync.WaitGroup
			for ri, r := range cl.regions {
				inner.Add(1)
				go func() {
					defer inner.Done()
					<-start
					send(i, ri, r)
				}()
			}
			close(start)
			inner.Wait()
		}()
	}
	wg.Wait()
}

// anonymous returns n anonymous voter tokens (valid in both regions: they
// share the JWT secret).
func anonymous(t *testing.T, c *testenv.Client, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = c.Do("POST", "/v1/auth/anonymous", "", nil).Must(t, http.StatusOK).Str("access_token")
	}
	return out
}

// nodePID is the pid of a two-DC node from deploy/local/multidc's pid file.
func nodePID(t *testing.T, node string) int {
	t.Helper()
	dir := os.Getenv("TALLY_LOCAL_DIR")
	if dir == "" {
		_, here, _, _ := runtime.Caller(0)
		dir = filepath.Join(filepath.Dir(here), "..", "..", ".local")
	}
	b, err := os.ReadFile(filepath.Join(dir, "2dc", "run", node+".pid"))
	if err != nil {
		t.Fatalf("pid of %s (run `make up-2dc`): %v", node, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file of %s: %v", node, err)
	}
	return pid
}

// pauseNode SIGSTOPs a node (a hung DC); resume SIGCONTs it, and runs when
// the test ends in any case.
func pauseNode(t *testing.T, node string) (resume func()) {
	t.Helper()
	pid := nodePID(t, node)
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP %s: %v", node, err)
	}
	var once sync.Once
	resume = func() { once.Do(func() { _ = syscall.Kill(pid, syscall.SIGCONT) }) }
	t.Cleanup(resume)
	return resume
}

func freeAddr(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatalf("listen on %s: %v", host, err)
	}
	defer l.Close()
	return l.Addr().String()
}

// percentile of sorted durations.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(p * float64(len(d)-1))
	return d[i]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
