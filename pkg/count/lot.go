package count

import (
	"hash/fnv"
	"strconv"
)

// LotRule is how every method settles a tie its own rules leave open, in
// words for the result and the docs.
const LotRule = "lot: each tied option draws FNV-1a-64(seed \\x00 stage \\x00 option_id), seed = poll id; the lowest draw is chosen"

// draw is an option's ticket in the lot of one stage (an IRV round, the
// winner's pick): anyone holding the poll id and the option ids can redo
// it, and no one can steer it without changing the poll id.
func draw(seed, stage, option string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(seed))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(stage))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(option))
	return h.Sum64()
}

// lot picks one of tied (option indexes) by the lowest draw; equal draws,
// which need a hash collision, fall back to display order.
func lot(c Contest, stage string, tied []int) int {
	best, bestDraw := tied[0], draw(c.Seed, stage, c.Options[tied[0]])
	for _, i := range tied[1:] {
		if d := draw(c.Seed, stage, c.Options[i]); d < bestDraw || (d == bestDraw && i < best) {
			best, bestDraw = i, d
		}
	}
	return best
}

func roundStage(r int) string { return "round " + strconv.Itoa(r) }
