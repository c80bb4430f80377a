// Command baseline is the minimal MQTT → webhook bridge edgehook is measured
// against: paho with auto-ack, a JSON threshold check, a pool of net/http
// workers. No durability, no retries, no signatures, no ordering: whatever is
// in flight when it dies is lost. It exists only for `make bench`.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

func main() {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "MQTT broker")
	topic := flag.String("topic", "bench/baseline/+", "subscription")
	url := flag.String("url", "http://127.0.0.1:8080/hook", "webhook URL")
	field := flag.String("field", "v", "JSON field holding the value")
	below := flag.Float64("below", 1e6, "fire when the value is below this")
	workers := flag.Int("workers", 8, "concurrent HTTP requests")
	flag.Parse()

	type job struct {
		topic   string
		value   float64
		payload []byte
	}
	jobs := make(chan job, 10000)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *workers}}
	for i := 0; i < *workers; i++ {
		go func() {
			for j := range jobs {
				body, _ := json.Marshal(map[string]any{"topic": j.topic, "value": j.value, "payload": json.RawMessage(j.payload)})
				resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
				if err != nil {
					log.Print(err) // no retry: the event is lost
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}

	handler := func(_ paho.Client, m paho.Message) {
		var doc map[string]any
		if json.Unmarshal(m.Payload(), &doc) != nil {
			return
		}
		v, ok := doc[*field].(float64)
		if !ok || v >= *below {
			return
		}
		jobs <- job{topic: m.Topic(), value: v, payload: m.Payload()}
	}
	ready := make(chan struct{}, 1)
	opts := paho.NewClientOptions().AddBroker(*broker).SetClientID(fmt.Sprintf("baseline-%d", os.Getpid())).
		SetCleanSession(true).SetAutoReconnect(true).SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) {
			if t := c.Subscribe(*topic, 1, nil); t.Wait() && t.Error() != nil {
				log.Fatal(t.Error())
			}
			select {
			case ready <- struct{}{}:
			default:
			}
		})
	c := paho.NewClient(opts)
	if t := c.Connect(); t.Wait() && t.Error() != nil {
		log.Fatal(t.Error())
	}
	<-ready
	fmt.Println("ready")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	c.Disconnect(250)
}
