package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/tally-vote/tally/pkg/id"
)

// request is one logical vote request: one voter, one Idempotency-Key,
// retried with that same key (a bounded number of times) until answered.
type request struct {
	poll    id.ID
	voter   *voter
	option  id.ID
	key     string
	second  bool // another key from a voter who sent one before
	offered time.Time

	// Filled in as attempts are answered.
	answers    []int // status of each attempt, 0 = no answer
	status     int   // last answer
	code       string
	requestID  string
	voteID     string
	acceptedAt time.Time
}

func (r *request) accepted() bool {
	return r.status == http.StatusOK || r.status == http.StatusAccepted
}

type voter struct {
	id    id.ID
	token string
	poll  id.ID
	reqs  []*request
}

// ledger records every request of one fault's phase.
type ledger struct {
	mu      sync.Mutex
	reqs    []*request
	voters  []*voter
	shed    int // offers dropped because max-in-flight was reached
	noVoter int // offers dropped because no anonymous voter was at hand
}

func (l *ledger) add(r *request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, r)
	if len(r.voter.reqs) == 0 {
		l.voters = append(l.voters, r.voter)
	}
	r.voter.reqs = append(r.voter.reqs, r)
}

// send runs one request's attempts: a request that gets no answer, a 5xx or
// a 429 is retried with the same Idempotency-Key after a growing pause; any
// other answer is final.
func (h *harness) send(ctx context.Context, l *ledger, r *request, notify chan<- time.Time) {
	body := map[string]any{"option_id": r.option.String()}
	path := "/v1/polls/" + r.poll.String() + "/votes"
	for attempt := 0; attempt <= h.opt.retries; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(500*time.Millisecond<<(attempt-1), 4*time.Second)):
			}
		}
		a := h.api.do(ctx, "POST", path, r.voter.token, body, r.key)
		l.mu.Lock()
		r.answers = append(r.answers, a.status)
		r.status, r.code = a.status, a.code()
		if r.accepted() {
			r.requestID, r.voteID, r.acceptedAt = a.str("request_id"), a.str("vote_id"), time.Now()
		}
		l.mu.Unlock()
		if r.accepted() && notify != nil && a.status == http.StatusAccepted {
			select {
			case notify <- r.acceptedAt:
			default:
			}
		}
		if !retryable(a.status) {
			return
		}
	}
}

// load offers votes open-loop at a fixed rate until stopped: request i is
// due at start + i/rate whatever happened to the ones before it.
type load struct {
	h        *harness
	led      *ledger
	polls    []pollInfo
	tokens   *tokenPool
	phase    string
	sem      chan struct{}
	inflight sync.WaitGroup
	stopc    chan struct{}
	loopDone chan struct{}
	// accepted202 receives the time of 202 answers (best effort), for
	// faults that strike right after the API answered.
	accepted202 chan time.Time
	rng         *rand.Rand
}

func (h *harness) startLoad(ctx context.Context, ph *phase, tokens *tokenPool) *load {
	l := &load{h: h, led: ph.led, polls: ph.polls, tokens: tokens, phase: ph.name,
		sem: make(chan struct{}, h.opt.maxInFlight), stopc: make(chan struct{}), loopDone: make(chan struct{}),
		accepted202: make(chan time.Time, 1), rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	go l.loop(ctx)
	return l
}

func (l *load) loop(ctx context.Context) {
	defer close(l.loopDone)
	interval := time.Duration(float64(time.Second) / l.h.opt.rate)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i := 0; ; i++ {
		timer.Reset(time.Until(start.Add(time.Duration(i) * interval)))
		select {
		case <-l.stopc:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		r := l.next(i)
		if r == nil {
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.led.mu.Lock()
			l.led.shed++
			l.led.mu.Unlock()
			continue
		}
		l.led.add(r)
		l.inflight.Add(1)
		go func() {
			defer func() { <-l.sem; l.inflight.Done() }()
			l.h.send(ctx, l.led, r, l.accepted202)
		}()
	}
}

// next builds offer i: usually a new voter's first vote, sometimes an
// earlier voter's second vote under another key (which must be refused, or
// the first must not have been accepted).
func (l *load) next(i int) *request {
	key := fmt.Sprintf("%s-%s-%d", l.h.runID, l.phase, i)
	if l.rng.Float64() < l.h.opt.secondShare {
		l.led.mu.Lock()
		var v *voter
		if n := len(l.led.voters); n > 10 {
			c := l.led.voters[l.rng.IntN(n)]
			if len(c.reqs) == 1 && time.Since(c.reqs[0].offered) > 200*time.Millisecond {
				v = c
			}
		}
		l.led.mu.Unlock()
		if v != nil {
			return &request{poll: v.poll, voter: v, option: l.option(v.poll), key: key + "-again", second: true, offered: time.Now()}
		}
	}
	tok, ok := l.tokens.get()
	if !ok {
		l.led.mu.Lock()
		l.led.noVoter++
		l.led.mu.Unlock()
		return nil
	}
	p := l.polls[i%len(l.polls)]
	v := &voter{id: tok.id, token: tok.token, poll: p.id}
	return &request{poll: p.id, voter: v, option: p.options[l.rng.IntN(len(p.options))], key: key, offered: time.Now()}
}

func (l *load) option(poll id.ID) id.ID {
	for _, p := range l.polls {
		if p.id == poll {
			return p.options[l.rng.IntN(len(p.options))]
		}
	}
	return id.ID{}
}

// stop ends the offers and waits for the requests in flight, whose retries
// are bounded.
func (l *load) stop() {
	close(l.stopc)
	<-l.loopDone
	l.inflight.Wait()
}

// castNow sends one vote outside the steady load (the races), recorded in
// the same ledger, and returns it once answered.
func (h *harness) castNow(ctx context.Context, ph *phase, tokens *tokenPool, p pollInfo, option id.ID, key string) (*request, error) {
	tok, ok := tokens.wait(10 * time.Second)
	if !ok {
		return nil, fmt.Errorf("no anonymous voter available")
	}
	r := &request{poll: p.id, voter: &voter{id: tok.id, token: tok.token, poll: p.id}, option: option,
		key: h.runID + "-" + key, offered: time.Now()}
	ph.led.add(r)
	h.send(ctx, ph.led, r, nil)
	return r, nil
}
