// Command events-consumer is the analytics example of the public event
// stream: it reads tally.events (CloudEvents JSON, keyed by poll) in its
// own consumer group, deduplicates by event id, and prints each poll's
// lifecycle and its latest coarsened counts as JSON lines:
//
//	go run ./deploy/analytics/events-consumer -brokers 127.0.0.1:9092
//
// It imports only pkg/events for the schema; any CloudEvents consumer can
// read the topic the same way.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"os"
	"os/signal"
	"strings"

	"github.com/segmentio/kafka-go"

	"github.com/tally-vote/tally/pkg/events"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "comma-separated Kafka brokers")
	topic := flag.String("topic", "tally.events", "the events topic")
	group := flag.String("group", "tally-events-analytics", "consumer group")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: strings.Split(*brokers, ","), Topic: *topic, GroupID: *group,
		StartOffset: kafka.FirstOffset})
	defer r.Close()
	seen := map[string]bool{} // event ids: the stream is at least once
	out := json.NewEncoder(os.Stdout)
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Print(err)
			}
			return
		}
		var ev events.Event
		if err := json.Unmarshal(m.Value, &ev); err != nil || seen[ev.ID] {
			_ = r.CommitMessages(ctx, m)
			continue
		}
		seen[ev.ID] = true
		row := map[string]any{"poll_id": ev.Subject, "type": ev.Type, "time": ev.Time}
		switch ev.Type {
		case events.TypeResultsChanged:
			var d events.ResultsChanged
			if json.Unmarshal(ev.Data, &d) == nil {
				row["ballots_at_least"], row["options"], row["step"] = d.Counts.Ballots, d.Counts.Options, d.Step
			}
		case events.TypeTallyFrozen:
			var d events.TallyFrozen
			if json.Unmarshal(ev.Data, &d) == nil && d.Counts != nil {
				row["ballots"], row["options"] = d.Counts.Ballots, d.Counts.Options
			}
		}
		_ = out.Encode(row)
		if err := r.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			log.Print(err)
		}
	}
}
