package redisx

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/id"
)

// pubsubServer speaks just enough RESP2 for a subscriber: SUBSCRIBE, PING
// and PUBLISH (delivered to every subscribed connection). It can drop its
// subscribers' connections and stop answering, as a hung Redis does.
type pubsubServer struct {
	ln    net.Listener
	mu    sync.Mutex
	subs  map[net.Conn]bool
	mute  bool
	conns []net.Conn
}

func newPubsubServer(t *testing.T) *pubsubServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &pubsubServer{ln: ln, subs: map[net.Conn]bool{}}
	go s.serve()
	t.Cleanup(func() { ln.Close(); s.dropAll() })
	return s
}

func (s *pubsubServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		go s.handle(c)
	}
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(line)[1:])
	if err != nil {
		return nil, err
	}
	args := make([]string, n)
	for i := range args {
		if _, err := r.ReadString('\n'); err != nil { // $len
			return nil, err
		}
		a, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		args[i] = strings.TrimSuffix(a, "\r\n")
	}
	return args, nil
}

func (s *pubsubServer) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		s.mu.Lock()
		mute := s.mute
		s.mu.Unlock()
		if mute {
			continue
		}
		var reply string
		switch strings.ToUpper(args[0]) {
		case "SUBSCRIBE":
			s.mu.Lock()
			s.subs[c] = true
			s.mu.Unlock()
			for i, ch := range args[1:] {
				reply += "*3\r\n$9\r\nsubscribe\r\n$" + strconv.Itoa(len(ch)) + "\r\n" + ch + "\r\n:" + strconv.Itoa(i+1) + "\r\n"
			}
		case "PING":
			reply = "*2\r\n$4\r\npong\r\n$0\r\n\r\n"
		case "HELLO": // answered as a Redis before 6 would: RESP2 it is
			reply = "-ERR unknown command 'HELLO'\r\n"
		case "PUBLISH":
			n := s.publish(args[1], args[2])
			reply = ":" + strconv.Itoa(n) + "\r\n"
		default:
			reply = "+OK\r\n"
		}
		if _, err := io.WriteString(c, reply); err != nil {
			return
		}
	}
}

func (s *pubsubServer) publish(channel, payload string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.subs {
		_, _ = io.WriteString(c, "*3\r\n$7\r\nmessage\r\n$"+strconv.Itoa(len(channel))+"\r\n"+channel+"\r\n$"+
			strconv.Itoa(len(payload))+"\r\n"+payload+"\r\n")
	}
	return len(s.subs)
}

// dropAll closes every connection, as a Redis restart does.
func (s *pubsubServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	clear(s.subs)
}

func (s *pubsubServer) setMute(m bool) {
	s.mu.Lock()
	s.mute = m
	s.mu.Unlock()
}

// Notices arrive; after the connection is lost, or Redis stops answering,
// the subscription is made again and reported, and notices flow again.
func TestPollChangesResubscribe(t *testing.T) {
	srv := newPubsubServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.ln.Addr().String(), Protocol: 2, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, DisableIdentity: true})
	defer rdb.Close()
	pc := NewPollChanges(rdb, zap.NewNop())
	pc.idle, pc.maxBackoff = 100*time.Millisecond, 100*time.Millisecond
	got := make(chan id.ID, 16)
	connected := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pc.Watch(ctx, func(p id.ID) { got <- p }, func() { connected <- struct{}{} })
	}()
	defer func() { cancel(); <-done }()

	wait := func(what string) {
		t.Helper()
		select {
		case <-connected:
		case <-time.After(3 * time.Second):
			t.Fatalf("no subscription %s", what)
		}
	}
	deliver := func() {
		t.Helper()
		want := id.New()
		if n := srv.publish(PollChanged, want.String()); n == 0 {
			t.Fatal("no subscriber")
		}
		select {
		case p := <-got:
			if p != want {
				t.Fatalf("notice for %s, want %s", p, want)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("notice not delivered")
		}
	}
	wait("at start")
	deliver()
	srv.publish(PollChanged, "not-an-id") // ignored

	srv.dropAll()
	wait("after the connection was lost")
	deliver()

	// Hung: the connection stays open and nothing answers. The
	// subscription must notice by itself (its ping goes unanswered).
	srv.setMute(true)
	time.Sleep(400 * time.Millisecond)
	srv.setMute(false)
	wait("after Redis hung")
	deliver()

	// Publish goes through the same client.
	if err := pc.Publish(context.Background(), id.New()); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// Counts notices ride the same subscription as poll change notices and
// reach the listener with their time; poll change notices reach both the
// poll views and the listener; the listener hears of each (re)subscription
// once.
func TestPollChangesCarryCountsNotices(t *testing.T) {
	srv := newPubsubServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.ln.Addr().String(), Protocol: 2, MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, DisableIdentity: true})
	defer rdb.Close()
	pc := NewPollChanges(rdb, zap.NewNop())
	pc.idle, pc.maxBackoff = 100*time.Millisecond, 100*time.Millisecond
	type counted struct {
		p  id.ID
		at time.Time
	}
	counts := make(chan counted, 16)
	polls := make(chan id.ID, 16)
	views := make(chan id.ID, 16)
	connected := make(chan struct{}, 16)
	pc.Listen(Listener{
		Counted:     func(p id.ID, at time.Time) { counts <- counted{p, at} },
		PollChanged: func(p id.ID) { polls <- p },
		Connected:   func() { connected <- struct{}{} },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pc.Watch(ctx, func(p id.ID) { views <- p }, func() {}) }()
	defer func() { cancel(); <-done }()
	select {
	case <-connected:
	case <-time.After(3 * time.Second):
		t.Fatal("no subscription")
	}
	p := id.New()
	at := time.UnixMilli(time.Now().UnixMilli())
	if err := pc.PublishCounted(ctx, p, at); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-counts:
		if c.p != p || !c.at.Equal(at) {
			t.Fatalf("counts notice %v %v, want %v %v", c.p, c.at, p, at)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("counts notice not delivered")
	}
	srv.publish(CountsChanged, "garbage") // ignored
	if err := pc.Publish(ctx, p); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan id.ID{views, polls} {
		select {
		case got := <-ch:
			if got != p {
				t.Fatalf("poll notice for %s", got)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("poll notice not delivered to both receivers")
		}
	}
	select {
	case <-counts:
		t.Fatal("a malformed or poll notice reached Counted")
	case <-connected:
		t.Fatal("connected reported twice for one subscription")
	case <-time.After(100 * time.Millisecond):
	}
}
