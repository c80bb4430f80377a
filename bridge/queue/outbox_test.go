package queue

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func open(t *testing.T, dir string) *Outbox {
	t.Helper()
	o, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func job(o *Outbox, target, series string, body string) *Job {
	return &Job{Seq: o.NextSeq(), Target: target, ID: fmt.Sprintf("evt_%s_%s", series, body), Series: series, Rule: "r",
		Type: "rule.fired", Created: time.Unix(1700000000, 5).UTC(), Body: []byte(body)}
}

func scanAll(t *testing.T, o *Outbox, target string) []*Job {
	t.Helper()
	var out []*Job
	if _, _, err := o.Scan(target, 0, 1000, func(j *Job) { out = append(out, j) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPutScanDoneDead(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir)
	a1, a2, b1 := job(o, "a", "s1", "1"), job(o, "a", "s2", "2"), job(o, "b", "s1", "3")
	if err := o.Commit(&Batch{Put: []*Job{a1, a2, b1}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := o.Pending(); n != 3 {
		t.Fatalf("pending %d", n)
	}
	got := scanAll(t, o, "a")
	if len(got) != 2 || got[0].Seq != a1.Seq || got[1].Seq != a2.Seq || string(got[1].Body) != "2" || got[0].ID != a1.ID || !got[0].Created.Equal(a1.Created) {
		t.Fatalf("scan: %+v", got)
	}
	a2.Reason, a2.Status, a2.DeadAt = "receiver said 400", 400, time.Unix(1700000100, 0).UTC()
	if err := o.Commit(&Batch{Done: []*Job{a1}, Dead: []*Job{a2}}); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, o, "a"); len(got) != 0 {
		t.Fatalf("after done/dead: %+v", got)
	}
	var dead []*Job
	o.DeadLetters(func(j *Job) { dead = append(dead, j) })
	if len(dead) != 1 || dead[0].Reason != "receiver said 400" || dead[0].Status != 400 || dead[0].ID != a2.ID {
		t.Fatalf("dead: %+v", dead)
	}
	if n, size := o.Pending(); n != 1 || size <= 0 {
		t.Fatalf("pending %d %d", n, size)
	}
	if c, err := o.DeadCounts(); err != nil || c["a"] != 1 || len(c) != 1 {
		t.Fatalf("dead counts: %v %v", c, err)
	}
	// A retry puts it back under a new Seq, with its id, and discards the
	// dead letter, in one commit.
	again := *dead[0]
	again.Seq, again.Attempts, again.Reason = o.NextSeq(), 0, ""
	if err := o.Commit(&Batch{Put: []*Job{&again}, Discard: []uint64{dead[0].Seq}}); err != nil {
		t.Fatal(err)
	}
	if got := scanAll(t, o, "a"); len(got) != 1 || got[0].ID != a2.ID || got[0].Seq != again.Seq {
		t.Fatalf("revived: %+v", got)
	}
	o.DeadLetters(func(j *Job) { t.Fatalf("dead letter left: %+v", j) })
	o.Close()

	// Everything survives a reopen, and sequence numbers keep increasing.
	o = open(t, dir)
	defer o.Close()
	if got := scanAll(t, o, "b"); len(got) != 1 || got[0].ID != b1.ID {
		t.Fatalf("after reopen: %+v", got)
	}
	if n, _ := o.Pending(); n != 2 {
		t.Fatalf("pending after reopen %d", n)
	}
	if s := o.NextSeq(); s <= b1.Seq {
		t.Fatalf("sequence went back: %d <= %d", s, b1.Seq)
	}
}

func TestScanPaging(t *testing.T) {
	o := open(t, t.TempDir())
	defer o.Close()
	var b Batch
	for i := 0; i < 10; i++ {
		b.Put = append(b.Put, job(o, "a", "s", fmt.Sprint(i)))
	}
	if err := o.Commit(&b); err != nil {
		t.Fatal(err)
	}
	var seen []string
	next, _, _ := o.Scan("a", 0, 4, func(j *Job) { seen = append(seen, string(j.Body)) })
	next, _, _ = o.Scan("a", next, 4, func(j *Job) { seen = append(seen, string(j.Body)) })
	next, _, _ = o.Scan("a", next, 4, func(j *Job) { seen = append(seen, string(j.Body)) })
	if next != 0 || fmt.Sprint(seen) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("paging: next=%d seen=%v", next, seen)
	}
}

func TestGroupCommit(t *testing.T) {
	o := open(t, t.TempDir())
	defer o.Close()
	const callers = 200
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- o.Commit(&Batch{Put: []*Job{job(o, "a", fmt.Sprint(i), "x")}})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := o.Pending(); n != callers {
		t.Fatalf("pending %d", n)
	}
	if c := o.Commits(); c >= callers {
		t.Fatalf("%d commits for %d concurrent callers: no group commit", c, callers)
	}
	t.Logf("%d callers, %d transactions", callers, o.Commits())
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir)
	defer o.Close()
	if _, err := Open(dir, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

func TestCorruptRecordQuarantined(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir)
	good := job(o, "a", "s", "ok")
	if err := o.Commit(&Batch{Put: []*Job{good}}); err != nil {
		t.Fatal(err)
	}
	// Damage one record the way a torn write could.
	err := o.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bOut).Bucket([]byte("a")).Put(seqKey(o.NextSeq()), []byte{jobVersion, 0xff, 0xff})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []*Job
	_, corrupt, err := o.Scan("a", 0, 100, func(j *Job) { got = append(got, j) })
	if err != nil || corrupt != 1 || len(got) != 1 || got[0].ID != good.ID {
		t.Fatalf("scan: err=%v corrupt=%d got=%d", err, corrupt, len(got))
	}
	if n, _ := o.Pending(); n != 1 {
		t.Fatalf("pending after quarantine: %d", n)
	}
	o.Close()
}

func TestStatesMarksMeta(t *testing.T) {
	dir := t.TempDir()
	o := open(t, dir)
	err := o.Commit(&Batch{
		States: []KV{{Key: []byte("r\x00a"), Value: []byte("1")}, {Key: []byte("r\x00b"), Value: []byte("2")}},
		Marks:  []Mark{{PacketID: 7, Hash: 99, N: 5}},
		MarkN:  5,
		Meta:   []KV{{Key: []byte("disabled/ha"), Value: []byte("410")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Commit(&Batch{States: []KV{{Key: []byte("r\x00a")}}}); err != nil {
		t.Fatal(err)
	}
	o.Close()
	o = open(t, dir)
	defer o.Close()
	var keys []string
	o.States(func(k, v []byte) { keys = append(keys, string(k)+"="+string(v)) })
	if fmt.Sprint(keys) != "[r\x00b=2]" {
		t.Fatalf("states %q", keys)
	}
	marks, n, _ := o.Marks()
	if n != 5 || marks[7] != (Mark{PacketID: 7, Hash: 99, N: 5}) {
		t.Fatalf("marks %v %d", marks, n)
	}
	if v, _ := o.Meta("disabled/ha"); !bytes.Equal(v, []byte("410")) {
		t.Fatalf("meta %q", v)
	}
	if err := o.ClearMarks(); err != nil {
		t.Fatal(err)
	}
	if marks, _, _ := o.Marks(); len(marks) != 0 {
		t.Fatalf("marks after clear: %v", marks)
	}
}

func TestCommitWithoutSeqFailsAlone(t *testing.T) {
	o := open(t, t.TempDir())
	defer o.Close()
	if err := o.Commit(&Batch{Put: []*Job{{Target: "a"}}}); err == nil {
		t.Fatal("job without seq accepted")
	}
	if o.LastError() == nil {
		t.Fatal("LastError not set")
	}
	if err := o.Commit(&Batch{Put: []*Job{job(o, "a", "s", "x")}}); err != nil || o.LastError() != nil {
		t.Fatalf("a good commit after a bad one: %v %v", err, o.LastError())
	}
}

func TestJobCodec(t *testing.T) {
	j := &Job{Target: "ha", ID: "evt_1", Series: "s", Rule: "r", Type: "rule.resolved", Topic: "a/b", Reason: "gone", Created: time.Unix(1, 2).UTC(),
		DeadAt: time.Unix(3, 4).UTC(), Attempts: 7, Status: 410, QoS: 2, Retain: true, Body: []byte(`{"x":1}`)}
	got, err := decodeJob(j.encode())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *j) {
		t.Fatalf("round trip:\n%+v\n%+v", *got, *j)
	}
	if v := j.encode()[0]; v != jobVersion {
		t.Fatalf("a job never revived is written as version %d, want %d (older releases read it)", v, jobVersion)
	}
	j.Revived = time.Unix(5, 6).UTC()
	enc := j.encode()
	if enc[0] != jobVersion2 {
		t.Fatalf("a revived job is written as version %d, want %d", enc[0], jobVersion2)
	}
	if got, err = decodeJob(enc); err != nil || fmt.Sprintf("%+v", *got) != fmt.Sprintf("%+v", *j) {
		t.Fatalf("round trip of a revived job: %v\n%+v\n%+v", err, got, *j)
	}
	j.Undeliverable = true
	if got, err = decodeJob(j.encode()); err != nil || !got.Undeliverable || got.Retain != j.Retain || got.QoS != j.QoS {
		t.Fatalf("Undeliverable lost: %v %+v", err, got)
	}
	if tg, ok := jobTarget(j.encode()); !ok || tg != "ha" {
		t.Fatalf("jobTarget: %q %v", tg, ok)
	}
	if a := j.Age(time.Unix(15, 6)); a != 10*time.Second {
		t.Fatalf("Age counts from Revived: got %v", a)
	}
}

func FuzzDecodeJob(f *testing.F) {
	f.Add((&Job{ID: "a", Body: []byte("b")}).encode())
	f.Add([]byte{jobVersion})
	f.Add((&Job{ID: "a", Revived: time.Unix(9, 0)}).encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		if j, err := decodeJob(b); err == nil {
			if !bytes.Equal(j.encode(), b) {
				// Equal content must encode identically; anything else is a codec bug.
				j2, err := decodeJob(j.encode())
				if err != nil || fmt.Sprint(*j2) != fmt.Sprint(*j) {
					t.Fatalf("re-encode changed the job")
				}
			}
		}
	})
}

func TestNewestDeadLettersAndDiscard(t *testing.T) {
	o := open(t, t.TempDir())
	defer o.Close()
	var dead []*Job
	for i := 0; i < 5; i++ {
		dead = append(dead, job(o, []string{"a", "b"}[i%2], "s", fmt.Sprint(i)))
	}
	if err := o.Commit(&Batch{Dead: dead}); err != nil {
		t.Fatal(err)
	}
	var got []string
	o.NewestDeadLetters(3, func(j *Job) { got = append(got, string(j.Body)) })
	if fmt.Sprint(got) != "[4 3 2]" {
		t.Fatalf("newest 3: %v", got)
	}
	if err := o.Commit(&Batch{Discard: []uint64{dead[4].Seq, dead[0].Seq}}); err != nil {
		t.Fatal(err)
	}
	if c, _ := o.DeadCounts(); c["a"] != 1 || c["b"] != 2 {
		t.Fatalf("counts after discarding two of a: %v", c)
	}
	if n, _ := o.Pending(); n != 0 {
		t.Fatalf("dead letters counted as pending: %d", n)
	}
}
