// Package votes carries ballots over the votes topic: Queue produces them
// (vote.Queue), Worker fetches batches, hands them to vote.Drainer,
// dead-letters what the drain gives up on and commits the offsets. It
// decides nothing about a vote: pkg/vote does.
package votes
