package receipt

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tally-vote/tally/pkg/id"
)

// RFC 8032 §7.1, TEST 1: the seed, its public key, and the signature of the
// empty message.
const (
	rfcSeed = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfcPub  = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
	rfcSig  = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func seedB64(t *testing.T, hexSeed string) string {
	return base64.StdEncoding.EncodeToString(mustHex(t, hexSeed))
}

func fixedID(b byte) id.ID {
	var u id.ID
	for i := range u {
		u[i] = b + byte(i)
	}
	return u
}

func sample(t *testing.T) (Receipt, []byte, []id.ID) {
	t.Helper()
	salt := bytes.Repeat([]byte{0xAB}, SaltSize)
	choice := []id.ID{fixedID(0x40), fixedID(0x60)}
	c, err := Commit(salt, choice)
	if err != nil {
		t.Fatal(err)
	}
	return Receipt{PollID: fixedID(0x10), VoteID: fixedID(0x20), Commitment: c,
		RecordedAt: time.Date(2026, 12, 3, 21, 0, 0, 123456789, time.UTC), BallotVersion: 1}, salt, choice
}

func TestSeedParsingFollowsRFC8032(t *testing.T) {
	kr, err := ParseKeys(seedB64(t, rfcSeed))
	if err != nil {
		t.Fatal(err)
	}
	k := kr.Keys()[0]
	if hex.EncodeToString(k.Public) != rfcPub {
		t.Fatalf("public key %x, want %s", k.Public, rfcPub)
	}
	if sig := ed25519.Sign(k.private, nil); hex.EncodeToString(sig) != rfcSig {
		t.Fatalf("signature of empty message %x, want %s", sig, rfcSig)
	}
	sum := sha256.Sum256(mustHex(t, rfcPub))
	if want := base64.RawURLEncoding.EncodeToString(sum[:8]); k.ID != want || len(k.ID) != 11 {
		t.Fatalf("kid %q, want %q", k.ID, want)
	}
}

func TestSignVerify(t *testing.T) {
	kr, _ := ParseKeys(seedB64(t, rfcSeed))
	r, salt, choice := sample(t)
	if err := kr.Sign(&r); err != nil {
		t.Fatal(err)
	}
	if r.KeyID != kr.ActiveKeyID() || len(r.Signature) != ed25519.SignatureSize {
		t.Fatalf("signed receipt kid %q sig %d bytes", r.KeyID, len(r.Signature))
	}
	if r.RecordedAt.Nanosecond() != 123000000 {
		t.Fatalf("recorded_at not truncated to ms: %v", r.RecordedAt)
	}
	if err := kr.Verify(&r); err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyWith(kr.Keys()[0].Public); err != nil {
		t.Fatal(err)
	}
	if err := r.OpenCommitment(salt, choice); err != nil {
		t.Fatal(err)
	}
}

func TestTamperIsDetected(t *testing.T) {
	kr, _ := ParseKeys(seedB64(t, rfcSeed))
	base, salt, choice := sample(t)
	if err := kr.Sign(&base); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(r *Receipt){
		"poll id":        func(r *Receipt) { r.PollID[0] ^= 1 },
		"vote id":        func(r *Receipt) { r.VoteID[15] ^= 1 },
		"commitment":     func(r *Receipt) { r.Commitment[7] ^= 0x80 },
		"recorded at":    func(r *Receipt) { r.RecordedAt = r.RecordedAt.Add(time.Millisecond) },
		"ballot version": func(r *Receipt) { r.BallotVersion = 2 },
		"signature":      func(r *Receipt) { r.Signature = append([]byte(nil), r.Signature...); r.Signature[0] ^= 1 },
		"short sig":      func(r *Receipt) { r.Signature = r.Signature[:63] },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			r := base
			mutate(&r)
			if err := kr.Verify(&r); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
		})
	}
	t.Run("key id", func(t *testing.T) {
		r := base
		r.KeyID = "AAAAAAAAAAA"
		if err := kr.Verify(&r); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
		// Even with the right key, a relabelled kid breaks the signature.
		if err := r.VerifyWith(kr.Keys()[0].Public); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("other choice", func(t *testing.T) {
		if err := base.OpenCommitment(salt, choice[:1]); !errors.Is(err, ErrBadCommitment) {
			t.Fatalf("err = %v", err)
		}
		swapped := []id.ID{choice[1], choice[0]}
		if err := base.OpenCommitment(salt, swapped); !errors.Is(err, ErrBadCommitment) {
			t.Fatalf("reordered choice: err = %v", err)
		}
		other := append([]byte(nil), salt...)
		other[0] ^= 1
		if err := base.OpenCommitment(other, choice); !errors.Is(err, ErrBadCommitment) {
			t.Fatalf("other salt: err = %v", err)
		}
		if err := base.OpenCommitment(salt[:16], choice); !errors.Is(err, ErrBadSalt) {
			t.Fatalf("short salt: err = %v", err)
		}
	})
}

func TestRotation(t *testing.T) {
	const newSeed = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb" // RFC 8032 TEST 2's seed
	old, _ := ParseKeys(seedB64(t, rfcSeed))
	issued, _, _ := sample(t)
	if err := old.Sign(&issued); err != nil {
		t.Fatal(err)
	}
	oldPub := base64.StdEncoding.EncodeToString(old.Keys()[0].Public)
	for name, spec := range map[string]string{
		"old seed kept":    seedB64(t, newSeed) + "," + seedB64(t, rfcSeed),
		"old public kept":  seedB64(t, newSeed) + "\n# retired 2026-12\npub:" + oldPub,
		"url alphabet too": base64.RawURLEncoding.EncodeToString(mustHex(t, newSeed)) + ", pub:" + strings.TrimRight(oldPub, "="),
	} {
		t.Run(name, func(t *testing.T) {
			kr, err := ParseKeys(spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := kr.Verify(&issued); err != nil {
				t.Fatalf("receipt under the old key: %v", err)
			}
			fresh, _, _ := sample(t)
			if err := kr.Sign(&fresh); err != nil {
				t.Fatal(err)
			}
			if fresh.KeyID == issued.KeyID || fresh.KeyID != kr.ActiveKeyID() {
				t.Fatalf("new receipt signed by %q, old %q, active %q", fresh.KeyID, issued.KeyID, kr.ActiveKeyID())
			}
			if err := kr.Verify(&fresh); err != nil {
				t.Fatal(err)
			}
			if err := old.Verify(&fresh); !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("old ring verifying new receipt: %v", err)
			}
			jwks := kr.JWKs()
			if len(jwks) != 2 || !jwks[0].Active || jwks[1].Active || jwks[1].KeyID != issued.KeyID {
				t.Fatalf("jwks = %+v", jwks)
			}
			for _, j := range jwks {
				if _, err := PublicKeyFromJWK(j); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCanonicalEncodingIsStable(t *testing.T) {
	// The layout is a wire format: receipts issued today must verify after any
	// refactor, so the bytes are pinned here, field by field.
	r, _, _ := sample(t)
	r.KeyID = "kid-1"
	want := "tally-receipt-v1\x00" +
		string(fixedID(0x10).Bytes()) + string(fixedID(0x20).Bytes()) + string(r.Commitment[:]) +
		"\x00\x00\x01\xa2\x3d\xb4\xf8\xfb" + // 1796331600123 ms (python: 2026-12-03T21:00:00.123Z)
		"\x00\x00\x00\x01" + "\x05kid-1"
	if got := r.SigningBytes(); string(got) != want {
		t.Fatalf("signing bytes\n got %x\nwant %x", got, want)
	}
	// The commitment of a fixed salt and choice is pinned too.
	c, _ := Commit(bytes.Repeat([]byte{0xAB}, SaltSize), []id.ID{fixedID(0x40), fixedID(0x60)})
	enc, _ := EncodeChoice([]id.ID{fixedID(0x40), fixedID(0x60)})
	if len(enc) != 2+32 || enc[0] != 0 || enc[1] != 2 {
		t.Fatalf("choice encoding %x", enc)
	}
	manual := sha256.Sum256(append(bytes.Repeat([]byte{0xAB}, SaltSize), enc...))
	if c != manual {
		t.Fatalf("commitment %x, want %x", c, manual)
	}
	if empty, _ := EncodeChoice(nil); !bytes.Equal(empty, []byte{0, 0}) {
		t.Fatalf("empty choice %x", empty)
	}
}

func TestSignedByRFCKeyIsPinned(t *testing.T) {
	// Ed25519 is deterministic: the same key and bytes give the same
	// signature, so a whole signed receipt can be pinned.
	kr, _ := ParseKeys(seedB64(t, rfcSeed))
	r, _, _ := sample(t)
	if err := kr.Sign(&r); err != nil {
		t.Fatal(err)
	}
	again, _, _ := sample(t)
	_ = kr.Sign(&again)
	if !bytes.Equal(r.Signature, again.Signature) {
		t.Fatal("signing the same receipt twice gave different signatures")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# active\n"+seedB64(t, rfcSeed)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		cfg        Config
		production bool
		wantErr    string
		wantKeys   int
	}{
		{"dev without keys", Config{Enabled: true}, false, "", 0},
		{"production disabled without keys", Config{}, true, "", 0},
		{"production enabled without keys", Config{Enabled: true}, true, "needs TALLY_RECEIPT_KEYS", 0},
		{"production enabled with keys", Config{Enabled: true, Keys: seedB64(t, rfcSeed)}, true, "", 1},
		{"file", Config{Enabled: true, KeysFile: file}, true, "", 1},
		{"missing file", Config{KeysFile: filepath.Join(dir, "nope")}, false, "read TALLY_RECEIPT_KEYS_FILE", 0},
		{"both", Config{Keys: seedB64(t, rfcSeed), KeysFile: file}, false, "not both", 0},
		{"short seed", Config{Keys: base64.StdEncoding.EncodeToString(make([]byte, 31))}, false, "31 bytes", 0},
		{"not base64", Config{Keys: "not*base64"}, false, "not base64", 0},
		{"pub first", Config{Keys: "pub:" + base64.StdEncoding.EncodeToString(mustHex(t, rfcPub))}, false, "must be a seed", 0},
		{"duplicate", Config{Keys: seedB64(t, rfcSeed) + ",pub:" + base64.StdEncoding.EncodeToString(mustHex(t, rfcPub))}, false, "configured twice", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Check(tc.production)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Check err = %v, want %q", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			kr, err := tc.cfg.Keyring()
			if err != nil {
				t.Fatal(err)
			}
			if len(kr.Keys()) != tc.wantKeys {
				t.Fatalf("%d keys, want %d", len(kr.Keys()), tc.wantKeys)
			}
		})
	}
	if s := (Config{Keys: seedB64(t, rfcSeed)}).String(); strings.Contains(s, seedB64(t, rfcSeed)[:8]) {
		t.Fatalf("String leaks the seed: %s", s)
	}
}

func TestEmptyRingRefusesToSign(t *testing.T) {
	kr, err := ParseKeys("")
	if err != nil {
		t.Fatal(err)
	}
	r, _, _ := sample(t)
	if err := kr.Sign(&r); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("err = %v", err)
	}
	if len(kr.JWKs()) != 0 {
		t.Fatal("empty ring serves keys")
	}
}

func TestDevKeysAreFreshSeeds(t *testing.T) {
	a, err := NewDevKeys()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewDevKeys()
	if a == b {
		t.Fatal("two dev keys are equal")
	}
	if _, err := ParseKeys(a); err != nil {
		t.Fatal(err)
	}
}

func TestInstrument(t *testing.T) {
	kr, _ := ParseKeys(seedB64(t, rfcSeed) + ",pub:" + base64.StdEncoding.EncodeToString(mustHex(t, "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")))
	reg := prometheus.NewRegistry()
	kr.Instrument(reg)
	r, _, _ := sample(t)
	_ = kr.Sign(&r)
	if got := testutil.ToFloat64(kr.signed); got != 1 {
		t.Fatalf("signed = %v", got)
	}
	if n, _ := testutil.GatherAndCount(reg, "tally_receipt_keys"); n != 2 {
		t.Fatalf("tally_receipt_keys series = %d", n)
	}
}

func TestTreeHeadSignature(t *testing.T) {
	kr, _ := ParseKeys(seedB64(t, rfcSeed))
	h := TreeHead{PollID: fixedID(0x10), Size: 3, FrozenAt: time.Date(2026, 12, 3, 22, 0, 0, 5e6, time.UTC)}
	h.Root[0] = 9
	if err := kr.SignHead(&h); err != nil {
		t.Fatal(err)
	}
	pub := kr.Keys()[0].Public
	if err := h.VerifyWith(pub); err != nil {
		t.Fatal(err)
	}
	// A head's signature never passes as a receipt's, or the other way round:
	// the two messages start with different tags.
	r := Receipt{KeyID: h.KeyID, Signature: h.Sig}
	if !bytes.HasPrefix(h.SigningBytes(), []byte("tally-ledger-head-v1\x00")) || r.VerifyWith(pub) == nil {
		t.Fatal("head signature accepted as a receipt's")
	}
	for name, mutate := range map[string]func(*TreeHead){
		"size": func(h *TreeHead) { h.Size = 4 },
		"root": func(h *TreeHead) { h.Root[1] = 1 },
		"poll": func(h *TreeHead) { h.PollID[0] ^= 1 },
		"time": func(h *TreeHead) { h.FrozenAt = h.FrozenAt.Add(time.Millisecond) },
		"kid":  func(h *TreeHead) { h.KeyID = "x" },
	} {
		c := h
		mutate(&c)
		if err := c.VerifyWith(pub); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%s changed: err = %v", name, err)
		}
	}
}

func TestScoredChoiceEncoding(t *testing.T) {
	opts := []id.ID{fixedID(0x40), fixedID(0x60)}
	plain, _ := EncodeChoice(opts)
	// No scores: exactly the plain encoding, so plurality, approval and
	// ranked commitments are unchanged.
	for _, none := range [][]int{nil, {}} {
		enc, err := EncodeScoredChoice(opts, none)
		if err != nil || !bytes.Equal(enc, plain) {
			t.Fatalf("no scores: %x %v, want %x", enc, err, plain)
		}
	}
	enc, err := EncodeScoredChoice(opts, []int{5, 0})
	if err != nil {
		t.Fatal(err)
	}
	if want := append(append([]byte(nil), plain...), 5, 0); !bytes.Equal(enc, want) {
		t.Fatalf("scored encoding %x, want %x", enc, want)
	}
	salt := bytes.Repeat([]byte{0xAB}, SaltSize)
	c, _ := CommitBallot(salt, opts, []int{5, 0})
	if manual := sha256.Sum256(append(append([]byte(nil), salt...), enc...)); c != manual {
		t.Fatalf("scored commitment %x, want %x", c, manual)
	}
	plainC, _ := Commit(salt, opts)
	if noScores, _ := CommitBallot(salt, opts, nil); noScores != plainC {
		t.Fatal("CommitBallot without scores differs from Commit")
	}
	// The scores are bound: other scores, swapped scores or none at all do
	// not open it.
	r := Receipt{Commitment: c}
	if err := r.OpenBallot(salt, opts, []int{5, 0}); err != nil {
		t.Fatal(err)
	}
	for _, other := range [][]int{{0, 5}, {4, 0}, nil} {
		if err := r.OpenBallot(salt, opts, other); !errors.Is(err, ErrBadCommitment) {
			t.Fatalf("scores %v opened the commitment: %v", other, err)
		}
	}
	for _, bad := range [][]int{{5}, {5, 0, 1}, {-1, 0}, {256, 0}} {
		if _, err := CommitBallot(salt, opts, bad); !errors.Is(err, ErrBadScores) {
			t.Fatalf("scores %v: err = %v", bad, err)
		}
	}
}
