package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// createPolls creates n polls, a few at a time.
func (h *harness) createPolls(ctx context.Context, prefix string, n, options int) ([]pollInfo, error) {
	polls := make([]pollInfo, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range polls {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			polls[i], errs[i] = h.api.createPoll(ctx, h.owner, fmt.Sprintf("chaos %s %s #%d", h.runID, prefix, i), options)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return polls, nil
}

// injectCloseRace closes many polls while, at the same instant, the owner
// edits each one's description. Every close answered 200 must stay closed
// and refuse votes: an edit that read the poll before the close and wrote
// after it must not reopen it.
func injectCloseRace(ctx context.Context, h *harness, ph *phase, l *load) error {
	polls, err := h.createPolls(ctx, "close-race", h.opt.racePolls, 3)
	if err != nil {
		return err
	}
	ph.racePolls = polls
	// A few votes first, so each closed poll has a tally to freeze.
	var wg sync.WaitGroup
	for i, p := range polls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 2 {
				if _, err := h.castNow(ctx, ph, l.tokens, p, p.options[k], fmt.Sprintf("close-race-%d-%d", i, k)); err != nil {
					ph.note("vote before the race: %v", err)
				}
			}
		}()
	}
	wg.Wait()

	const edits = 3
	status := make([]answer, len(polls))
	ph.faultStart = time.Now()
	for i, p := range polls {
		start := make(chan struct{})
		path := "/v1/polls/" + p.id.String()
		wg.Add(1 + edits)
		go func() {
			defer wg.Done()
			<-start
			status[i] = h.api.do(ctx, "PATCH", path, h.owner, map[string]any{"status": "closed"}, "")
		}()
		for k := range edits {
			jitter := time.Duration(rand.IntN(3000)) * time.Microsecond
			go func() {
				defer wg.Done()
				<-start
				time.Sleep(jitter)
				h.api.do(ctx, "PATCH", path, h.owner, map[string]any{"description": fmt.Sprintf("edit %d racing the close", k)}, "")
			}()
		}
		close(start)
	}
	wg.Wait()
	ph.faultEnd = time.Now()
	other := map[int]int{}
	for i, a := range status {
		if a.status == http.StatusOK {
			ph.closedOK = append(ph.closedOK, polls[i])
		} else {
			other[a.status]++
		}
	}
	ph.note("closes answered 200: %d of %d (others by status: %v)", len(ph.closedOK), len(polls), other)
	return h.checkClosed(ctx, ph, l.tokens, "right after the race")
}

// checkClosed asserts that every poll whose close got 200 reads as closed
// and refuses a fresh voter with 409 POLL_NOT_ACTIVE.
func (h *harness) checkClosed(ctx context.Context, ph *phase, tokens *tokenPool, when string) error {
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return err
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		reopened int
		accepted int
		odd      = map[string]int{}
	)
	for i, p := range ph.closedOK {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := h.api.do(ctx, "GET", "/v1/polls/"+p.id.String(), h.owner, nil, "")
			st := g.str("status")
			r, err := h.castNow(ctx, ph, tokens, p, p.options[0], fmt.Sprintf("closed-probe-%s-%d", when, i))
			mu.Lock()
			defer mu.Unlock()
			if g.status == http.StatusOK && st != "closed" {
				reopened++
				ph.violateOnce("reopened "+p.id.String(), "poll %s: close answered 200 but it reads %q %s", p.id, st, when)
			}
			switch {
			case err != nil:
				odd["no voter"]++
			case r.accepted():
				accepted++
				ph.violateOnce("voted "+p.id.String(), "poll %s: close answered 200 but a vote got %d %s", p.id, r.status, when)
			case r.status != http.StatusConflict || r.code != "POLL_NOT_ACTIVE":
				odd[fmt.Sprintf("%d %s", r.status, r.code)]++
			}
		}()
	}
	wg.Wait()
	msg := fmt.Sprintf("%s: %d closed polls read as open, %d accepted a vote", when, reopened, accepted)
	if len(odd) > 0 {
		msg += fmt.Sprintf(", other refusals %v", odd)
	}
	ph.note("%s", msg)
	return nil
}

// optionRace is one poll's vote and the option change that raced it.
type optionRace struct {
	poll  pollInfo
	vote  *request
	patch answer
}

// injectOptionsRace sends, on fresh polls, a vote and at the same instant a
// PATCH replacing the options. Either the PATCH is refused (409) and the
// vote counts, or the vote's request fails with a clear code; a vote must
// never be counted on an option the poll does not have.
func injectOptionsRace(ctx context.Context, h *harness, ph *phase, l *load) error {
	polls, err := h.createPolls(ctx, "options-race", h.opt.racePolls, 3)
	if err != nil {
		return err
	}
	ph.racePolls = polls
	races := make([]optionRace, len(polls))
	var wg sync.WaitGroup
	ph.faultStart = time.Now()
	for i, p := range polls {
		tok, ok := l.tokens.wait(10 * time.Second)
		if !ok {
			return fmt.Errorf("no anonymous voter for the options race")
		}
		r := &request{poll: p.id, voter: &voter{id: tok.id, token: tok.token, poll: p.id}, option: p.options[0],
			key: fmt.Sprintf("%s-options-race-%d", h.runID, i), offered: time.Now()}
		ph.led.add(r)
		races[i] = optionRace{poll: p, vote: r}
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			h.send(ctx, ph.led, r, nil)
		}()
		go func() {
			defer wg.Done()
			<-start
			races[i].patch = h.api.do(ctx, "PATCH", "/v1/polls/"+p.id.String(), h.owner, map[string]any{
				"options": []map[string]any{{"text": "new X"}, {"text": "new Y"}, {"text": "new Z"}},
			}, "")
		}()
		close(start)
	}
	wg.Wait()
	ph.faultEnd = time.Now()
	ph.optionRaces = races
	outcomes := map[string]int{}
	for _, rc := range races {
		outcomes[fmt.Sprintf("vote %d/patch %d", rc.vote.status, rc.patch.status)]++
	}
	ph.note("options race outcomes: %v", outcomes)
	return nil
}

// injectOwnerPatch has the owner edit polls while votes stream into them,
// as owners do mid-poll: extend end_time (200), move it into the past (400:
// ending a poll is the close), replace the options once votes were accepted
// (409 OPTIONS_FROZEN), then close (200). Every vote answered 202 must be
// counted on an option the poll has (the ledger's check: a vote the worker
// later refused shows as refused_late), and every close must hold.
func injectOwnerPatch(ctx context.Context, h *harness, ph *phase, l *load) error {
	polls, err := h.createPolls(ctx, "owner-patch", max(h.opt.racePolls/2, 2), 3)
	if err != nil {
		return err
	}
	ph.racePolls = polls
	ph.faultStart = time.Now()
	var (
		mu       sync.Mutex
		outcomes = map[string]int{}
		wg       sync.WaitGroup
	)
	count := func(step string, a answer) {
		mu.Lock()
		outcomes[fmt.Sprintf("%s %d %s", step, a.status, a.code())]++
		mu.Unlock()
	}
	violate := func(format string, args ...any) {
		mu.Lock()
		ph.violate(format, args...)
		mu.Unlock()
	}
	for i, p := range polls {
		stop := make(chan struct{})
		accepted := make(chan struct{}) // closed at the stream's first acceptance
		var once sync.Once
		wg.Add(2)
		go func() { // the stream of votes, until the close
			defer wg.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-ctx.Done():
					return
				case <-time.After(40 * time.Millisecond):
				}
				r, err := h.castNow(ctx, ph, l.tokens, p, p.options[k%len(p.options)], fmt.Sprintf("owner-patch-%d-%d", i, k))
				if err == nil && r.accepted() {
					once.Do(func() { close(accepted) })
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(stop)
			path := "/v1/polls/" + p.id.String()
			select {
			case <-accepted:
			case <-time.After(30 * time.Second):
				violate("poll %s: no vote accepted in 30 s", p.id)
				return
			case <-ctx.Done():
				return
			}
			if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
				return
			}
			a := h.api.do(ctx, "PATCH", path, h.owner, map[string]any{"end_time": time.Now().Add(2 * time.Hour).UTC()}, "")
			count("extend", a)
			if a.status != http.StatusOK {
				violate("poll %s: extending end_time answered %d %s", p.id, a.status, a.code())
			}
			_ = sleepCtx(ctx, 500*time.Millisecond)
			a = h.api.do(ctx, "PATCH", path, h.owner, map[string]any{"end_time": time.Now().Add(-time.Minute).UTC()}, "")
			count("past", a)
			if a.status/100 == 2 {
				violate("poll %s: end_time moved into the past answered %d", p.id, a.status)
			}
			_ = sleepCtx(ctx, 500*time.Millisecond)
			a = h.api.do(ctx, "PATCH", path, h.owner, map[string]any{
				"options": []map[string]any{{"text": "new X"}, {"text": "new Y"}}}, "")
			count("options", a)
			if a.status/100 == 2 {
				violate("poll %s: options replaced after votes were accepted: %d", p.id, a.status)
			}
			_ = sleepCtx(ctx, 500*time.Millisecond)
			a = h.api.do(ctx, "PATCH", path, h.owner, map[string]any{"status": "closed"}, "")
			count("close", a)
			if a.status != http.StatusOK {
				violate("poll %s: close answered %d %s", p.id, a.status, a.code())
				return
			}
			mu.Lock()
			ph.closedOK = append(ph.closedOK, p)
			mu.Unlock()
		}()
	}
	wg.Wait()
	ph.faultEnd = time.Now()
	ph.note("owner edits by step and answer: %v", outcomes)
	return h.checkClosed(ctx, ph, l.tokens, "right after the edits")
}

// slowBodies is how many vote requests the slow-body row trickles at once
// from one voter: past the admission's 256 slots, so if a trickling body
// held a slot, every honest vote of the process would be shed.
const slowBodies = 300

// tricklerIP is the slow-body row's client, forwarded by the loopback
// proxy the API trusts (a documentation address; nothing is sent to it).
const tricklerIP = "203.0.113.7"

// injectSlowBodies has one anonymous voter open slowBodies connections,
// each sending a vote request's headers and then its body a byte a second,
// for the hold, while the steady load goes on. The honest votes offered
// meanwhile must not be shed: a trickling body holds only its goroutine and
// its place under the per-client cap, never an admission slot.
func injectSlowBodies(ctx context.Context, h *harness, ph *phase, l *load) error {
	tok, ok := l.tokens.wait(10 * time.Second)
	if !ok {
		return fmt.Errorf("slow-bodies: no anonymous voter available")
	}
	polls := ph.polls
	if len(polls) == 0 {
		return fmt.Errorf("slow-bodies: no polls under load")
	}
	body := fmt.Sprintf(`{"option_id":%q}`, polls[0].options[0].String())
	addr := strings.TrimPrefix(h.api.base, "http://")
	ph.faultStart = time.Now()
	fctx, cancel := context.WithTimeout(ctx, h.opt.hold)
	defer cancel()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		opened int
	)
	for i := range slowBodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d net.Dialer
			conn, err := d.DialContext(fctx, "tcp", addr)
			if err != nil {
				return
			}
			defer conn.Close()
			head := fmt.Sprintf("POST /v1/polls/%s/votes HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
				"X-Forwarded-For: %s\r\nContent-Type: application/json\r\nIdempotency-Key: %s-slow-%d\r\n"+
				"Content-Length: %d\r\n\r\n", polls[0].id, addr, tok.token, tricklerIP, h.runID, i, len(body))
			if _, err := conn.Write([]byte(head)); err != nil {
				return
			}
			mu.Lock()
			opened++
			mu.Unlock()
			for k := 0; k < len(body)-1; k++ { // never the last byte: the body stays unfinished
				select {
				case <-fctx.Done():
					return
				case <-time.After(time.Second):
				}
				if _, err := conn.Write([]byte{body[k]}); err != nil {
					return
				}
			}
			<-fctx.Done()
		}()
	}
	wg.Wait()
	ph.faultEnd = time.Now()
	// The steady load's votes offered while the bodies trickled.
	ph.led.mu.Lock()
	var offered, shed int
	for _, r := range ph.led.reqs {
		if r.offered.Before(ph.faultStart) || r.offered.After(ph.faultEnd) {
			continue
		}
		offered++
		if r.status == http.StatusServiceUnavailable && r.code == "OVERLOADED" {
			shed++
		}
	}
	ph.led.mu.Unlock()
	ph.note("%d trickling bodies opened; honest votes offered meanwhile: %d, shed OVERLOADED: %d", opened, offered, shed)
	if offered == 0 {
		ph.violate("no honest vote was offered during the slow-body flood")
	} else if float64(shed) > 0.01*float64(offered) {
		ph.violate("%d of %d honest votes shed while one voter trickled %d bodies", shed, offered, opened)
	}
	return nil
}
