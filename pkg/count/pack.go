package count

// packed holds ballots as option indexes in one backing slice, so a count
// over thousands of ballots allocates a handful of slices, not one per
// ballot. prefs[start[b]:start[b+1]] is ballot b.
type packed struct {
	prefs []int
	start []int
}

func (p *packed) ballots() int { return len(p.start) - 1 }

func (p *packed) ballot(b int) []int { return p.prefs[p.start[b]:p.start[b+1]] }

// pack maps option ids to indexes. An id that names no option, or repeats
// one earlier on the same ballot, is skipped: ballots reach the counter
// validated, and a counter that cannot be made to panic by its input is
// one less thing to trust.
func pack(options []string, ballots [][]string) packed {
	index := make(map[string]int, len(options))
	for i, o := range options {
		index[o] = i
	}
	total := 0
	for _, b := range ballots {
		total += len(b)
	}
	p := packed{prefs: make([]int, 0, total), start: make([]int, 1, len(ballots)+1)}
	seen := make([]int, len(options)) // ballot number+1 that last listed the option
	for bi, b := range ballots {
		for _, o := range b {
			i, ok := index[o]
			if !ok || seen[i] == bi+1 {
				continue
			}
			seen[i] = bi + 1
			p.prefs = append(p.prefs, i)
		}
		p.start = append(p.start, len(p.prefs))
	}
	return p
}
