package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/geosearch/search/internal/kafka"
)

func newLogsCommand(o *options, getenv func(string) string) *cobra.Command {
	var (
		follow, asJSON bool
		since          time.Duration
		instance       string
		brokers, topic string
	)
	cmd := &cobra.Command{
		Use:   "logs [--follow] [--since DURATION] [--instance ID]",
		Short: "Print the log records every server instance shipped to Kafka",
		Long: `Logs reads the log topic from all partitions, so from every instance, and
prints the records readably (--json: as shipped). Without --follow it stops at
the end of the topic; with it, it prints new records as they arrive.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := kafka.TailOptions{Brokers: kafka.SplitBrokers(brokers), Topic: topic, Follow: follow}
			if since > 0 {
				opts.Since = time.Now().Add(-since)
			}
			return kafka.Tail(cmd.Context(), opts, func(r kafka.Record) error {
				if instance != "" && r.Key != instance {
					return nil
				}
				if asJSON {
					_, err := fmt.Fprintf(o.stdout, "%s\n", r.Value)
					return err
				}
				return printRecord(o.stdout, r)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "keep printing new records")
	f.DurationVar(&since, "since", 0, "start this long ago (e.g. 10m); default: the beginning of the topic")
	f.StringVar(&instance, "instance", "", "only records of this instance ID")
	f.StringVar(&brokers, "brokers", envOr(getenv, "KAFKA_BROKERS", "localhost:9092"), "Kafka brokers, comma separated (env KAFKA_BROKERS)")
	f.StringVar(&topic, "topic", envOr(getenv, "LOG_TOPIC", "search-service-logs"), "log topic (env LOG_TOPIC)")
	f.BoolVar(&asJSON, "json", false, "print each record's JSON as shipped")
	return cmd
}

// printRecord prints "TIME LEVEL INSTANCE MESSAGE key=value ...".
func printRecord(w io.Writer, r kafka.Record) error {
	var rec map[string]any
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		_, err := fmt.Fprintf(w, "%s %s (not JSON) %q\n", r.Time.UTC().Format(time.RFC3339Nano), r.Key, r.Value)
		return err
	}
	ts, _ := rec["time"].(string)
	if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
		ts = t.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	var keys []string
	for k := range rec {
		switch k {
		case "time", "level", "msg", "service", "instance":
		default:
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-5v %s %v", ts, rec["level"], r.Key, rec["msg"])
	for _, k := range keys {
		v := rec[k]
		if s, ok := v.(string); ok && strings.ContainsAny(s, " \t\"=") {
			v = fmt.Sprintf("%q", s)
		}
		fmt.Fprintf(&b, " %s=%v", k, v)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}
