package kafka_test

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/geosearch/search/internal/kafka"
	"github.com/geosearch/search/internal/kafka/kafkatest"
)

// TestCreateFenceTopics: the positions and events topics get the broker's
// default partitions, the checkpoint topic one; a second instance doing it
// again (the topics exist) is no error.
func TestCreateFenceTopics(t *testing.T) {
	t.Parallel()
	broker := kafkatest.Start(t)
	cfg := kafka.FenceConfig{PositionsTopic: "p", EventsTopic: "e", CheckpointTopic: "c"}
	for range 2 {
		if err := kafka.CreateFenceTopics(context.Background(), []string{broker.Addr()}, cfg); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrMetadataRequest()
	for _, name := range []string{"p", "e", "c"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, mt)
	}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, tp := range resp.Topics {
		got[*tp.Topic] = len(tp.Partitions)
	}
	want := map[string]int{"p": 3, "e": 3, "c": 1} // kafkatest's default is 3
	for name, n := range want {
		if got[name] != n {
			t.Errorf("topic %s has %d partitions, want %d", name, got[name], n)
		}
	}
}
