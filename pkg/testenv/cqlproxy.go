package testenv

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/tally-vote/tally/pkg/cassandra"
)

// CQLProxy is a TCP proxy in front of a Cassandra node that understands
// just enough of the native protocol (v4 frame headers) to cut a
// connection right after forwarding one chosen request, before its reply:
// the client then cannot know whether the node applied it. Point a session
// at Addr with cassandra.Config.DisableHostLookup so that every connection
// goes through it.
type CQLProxy struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	match func(opcode byte, body []byte) bool
	cut   chan struct{}
	conns []net.Conn
	// reply, once a reply frame matches it, turns on block; block refuses
	// every request it matches until Heal.
	reply   func(body []byte) bool
	block   func(opcode byte, body []byte) bool
	blocked chan struct{}
	active  bool
	// thenBlock turns the block on at the cut (CutThenBlock).
	thenBlock bool
}

// NewCQLProxy listens on a free loopback port and forwards to upstream.
func NewCQLProxy(t testing.TB, upstream string) *CQLProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CQLProxy{ln: ln, upstream: upstream}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

// BehindCQLProxy puts a CQLProxy in front of c's first node and points c
// at the proxy alone (no host discovery, two connections), so every
// statement of the session goes through it.
func BehindCQLProxy(t testing.TB, c *cassandra.Config) *CQLProxy {
	t.Helper()
	p := NewCQLProxy(t, c.Hosts[0])
	c.Hosts = []string{p.Addr()}
	c.DisableHostLookup = true
	c.NumConns = 2
	return p
}

// Naming matches a request that runs a statement (query, execute, batch)
// whose frame carries every one of parts (a bound id's bytes, a key).
func Naming(parts ...[]byte) func(opcode byte, body []byte) bool {
	return func(op byte, body []byte) bool {
		if op != OpQuery && op != OpExecute && op != OpBatch {
			return false
		}
		for _, part := range parts {
			if !bytes.Contains(body, part) {
				return false
			}
		}
		return true
	}
}

// Addr is the proxy's host:port.
func (p *CQLProxy) Addr() string { return p.ln.Addr().String() }

// CutAfter arms the proxy: the next request frame for which match is true
// is forwarded to the node, and then its connection is closed both ways
// before any reply. The returned channel closes when that has happened.
func (p *CQLProxy) CutAfter(match func(opcode byte, body []byte) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match, p.cut = match, make(chan struct{})
	return p.cut
}

// CutThenBlock is CutAfter, and from the cut on every request for which
// block is true is refused as BlockAfterReply refuses it, until Heal: the
// client can neither learn the cut request's outcome nor re-issue it.
func (p *CQLProxy) CutThenBlock(match func(opcode byte, body []byte) bool, block func(opcode byte, body []byte) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.match, p.cut = match, make(chan struct{})
	p.reply, p.block, p.blocked, p.active = nil, block, nil, false
	p.thenBlock = true
	return p.cut
}

// BlockAfterReply arms the proxy: once a reply frame for which reply is
// true has been passed to the client, every later request for which block
// is true is refused (its connection closed both ways, the request never
// reaching the node) until Heal. The returned channel closes when the
// block turns on. The driver reconnects through the proxy and meets the
// same refusal, so matching statements fail for as long as the block
// holds, while every other statement goes through.
func (p *CQLProxy) BlockAfterReply(reply func(body []byte) bool, block func(opcode byte, body []byte) bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reply, p.block, p.blocked, p.active = reply, block, make(chan struct{}), false
	return p.blocked
}

// Heal lifts a block.
func (p *CQLProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reply, p.block, p.active, p.thenBlock = nil, nil, false, false
}

// replies forwards the node's frames to the client, watching for the
// reply that turns a block on.
func (p *CQLProxy) replies(c, u net.Conn) {
	defer c.Close()
	head := make([]byte, 9)
	for {
		if _, err := io.ReadFull(u, head); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[5:9]))
		if _, err := io.ReadFull(u, body); err != nil {
			return
		}
		if _, err := c.Write(append(head[:9:9], body...)); err != nil {
			return
		}
		p.mu.Lock()
		if p.reply != nil && !p.active && p.reply(body) {
			p.active = true
			close(p.blocked)
		}
		p.mu.Unlock()
	}
}

// CQL opcodes of requests that run statements.
const (
	OpQuery   byte = 0x07
	OpExecute byte = 0x0A
	OpBatch   byte = 0x0D
)

func (p *CQLProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go p.replies(c, u)
		go p.requests(c, u)
	}
}

// requests forwards the client's frames one by one, cutting where armed.
func (p *CQLProxy) requests(c, u net.Conn) {
	defer u.Close()
	defer c.Close()
	head := make([]byte, 9)
	for {
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[5:9]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.active && p.block != nil && p.block(head[4], body)
		p.mu.Unlock()
		if refuse {
			return // the deferred closes cut both ways
		}
		if _, err := u.Write(append(head[:9:9], body...)); err != nil {
			return
		}
		p.mu.Lock()
		hit := p.match != nil && p.match(head[4], body)
		var cut chan struct{}
		if hit {
			cut, p.match = p.cut, nil
			if p.thenBlock {
				p.active, p.thenBlock = true, false
			}
		}
		p.mu.Unlock()
		if hit {
			// The request is on its way to the node; the reply will find
			// no client.
			c.Close()
			u.Close()
			close(cut)
			return
		}
	}
}
