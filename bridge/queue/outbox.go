// Package queue is edgehook's durable store: the outbox of jobs (webhooks and
// MQTT publish actions) waiting for delivery, the dead letters, the rule state,
// the MQTT redelivery marks and inbound replay ids, all in one bbolt file.
//
// Durability: Commit returns only after its batch is on disk. With Sync the
// commit is fsynced (it survives power loss); without it the data is handed to
// the kernel (it survives a crash of the process, not of the machine).
// Concurrent Commit calls are merged into one transaction and one fsync (group
// commit): the first caller becomes the leader and commits everything queued
// while it waits; the others just wait for their batch. No goroutine is started.
//
// An Outbox is safe for concurrent use.
package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bucket names.
var (
	bOut     = []byte("out")     // target → (seq → job)
	bDead    = []byte("dead")    // seq → job with dead-letter fields
	bState   = []byte("state")   // rule \x00 series → encoded rules.State
	bMarks   = []byte("marks")   // MQTT packet id → hash, n
	bMeta    = []byte("meta")    // small named values
	bReplay  = []byte("replay")  // route \x00 webhook-id → expiry
	bCorrupt = []byte("corrupt") // undecodable records, kept for inspection
)

// FileName is the store's file inside the store directory.
const FileName = "edgehook.db"

// ErrLocked means another process holds the store.
var ErrLocked = errors.New("store is in use by another edgehook process")

// Outbox is the durable store. See the package doc.
type Outbox struct {
	db   *bolt.DB
	path string

	lastErr atomic.Pointer[error] // of the most recent commit; nil pointer after a success
	seq     atomic.Uint64         // last assigned job sequence number
	commits atomic.Int64          // transactions committed
	pending atomic.Int64          // bytes of jobs in the outbox (not dead letters)
	count   atomic.Int64          // jobs in the outbox

	mu      sync.Mutex // guards the fields below
	queue   []*request
	leading bool

	tmu       sync.Mutex // guards perTarget
	perTarget map[string]int64
}

type request struct {
	b    *Batch
	done chan error
}

// KV is a key and value; a nil Value deletes Key.
type KV struct {
	Key, Value []byte
}

// Mark remembers the last MQTT message seen with a packet id, so a redelivery
// (DUP) of a message already committed is recognised after a crash.
type Mark struct {
	PacketID uint16
	Hash     uint64 // of topic and payload
	N        uint64 // message counter when it was committed
}

// Batch is everything one Commit writes, atomically.
type Batch struct {
	Put     []*Job   // new jobs; Seq must be set (NextSeq)
	Done    []*Job   // delivered jobs to delete
	Dead    []*Job   // jobs to move to the dead letters (their Reason etc. set)
	Discard []uint64 // dead letters to delete, by Seq (retried under a new Seq, or thrown away)
	States  []KV     // rule states
	Marks   []Mark   // MQTT redelivery marks
	MarkN   uint64   // the message counter after this batch (0: unchanged)
	Meta    []KV     // named values (e.g. disabled endpoints)
	Replay  []KV     // inbound replay ids
}

func (b *Batch) empty() bool {
	return len(b.Put)+len(b.Done)+len(b.Dead)+len(b.Discard)+len(b.States)+len(b.Marks)+len(b.Meta)+len(b.Replay) == 0 && b.MarkN == 0
}

// Open opens (creating if needed) the store in dir. It fails with ErrLocked
// when another process has it open.
func Open(dir string, sync bool) (*Outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:        time.Second,
		NoSync:         !sync,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("store %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: %w (if the file is damaged, move it aside to start with an empty store)", path, err)
	}
	o := &Outbox{db: db, path: path, perTarget: map[string]int64{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bOut, bDead, bState, bMarks, bMeta, bReplay, bCorrupt} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store %s: %w", path, err)
	}
	if err := o.recount(); err != nil {
		db.Close()
		return nil, err
	}
	return o, nil
}

// recount computes the sequence counter and pending totals from disk.
func (o *Outbox) recount() error {
	return o.db.View(func(tx *bolt.Tx) error {
		var max uint64
		var n, size int64
		per := map[string]int64{}
		seen := func(k []byte) {
			if len(k) == 8 {
				max = maxU(max, binary.BigEndian.Uint64(k))
			}
		}
		err := tx.Bucket(bOut).ForEachBucket(func(target []byte) error {
			return tx.Bucket(bOut).Bucket(target).ForEach(func(k, v []byte) error {
				seen(k)
				n++
				per[string(target)]++
				size += int64(len(v))
				return nil
			})
		})
		if err != nil {
			return err
		}
		if k, _ := tx.Bucket(bDead).Cursor().Last(); k != nil {
			seen(k)
		}
		if v := tx.Bucket(bMeta).Get([]byte("seq")); len(v) == 8 {
			max = maxU(max, binary.BigEndian.Uint64(v))
		}
		o.seq.Store(max)
		o.count.Store(n)
		o.tmu.Lock()
		o.perTarget = per
		o.tmu.Unlock()
		o.pending.Store(size)
		return nil
	})
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// Path returns the store file's path.
func (o *Outbox) Path() string { return o.path }

// Close closes the store. Commits must have returned.
func (o *Outbox) Close() error { return o.db.Close() }

// NextSeq returns a new job sequence number. Numbers increase; a failed commit
// leaves a gap, which is harmless.
func (o *Outbox) NextSeq() uint64 { return o.seq.Add(1) }

// PendingFor returns the number of jobs of one target in the outbox.
func (o *Outbox) PendingFor(target string) int64 {
	o.tmu.Lock()
	defer o.tmu.Unlock()
	return o.perTarget[target]
}

// Commits returns how many transactions have been committed (each one fsync).
func (o *Outbox) Commits() int64 { return o.commits.Load() }

// Pending returns the number of jobs and their encoded bytes in the outbox.
func (o *Outbox) Pending() (jobs, bytes int64) { return o.count.Load(), o.pending.Load() }

// Commit writes b atomically and returns once it is durable (see the package
// doc). Concurrent calls share one transaction. On error nothing of b was written.
func (o *Outbox) Commit(b *Batch) error {
	if b.empty() {
		return nil
	}
	r := &request{b: b, done: make(chan error, 1)}
	o.mu.Lock()
	o.queue = append(o.queue, r)
	if o.leading {
		o.mu.Unlock()
		return <-r.done
	}
	o.leading = true
	for len(o.queue) > 0 {
		reqs := o.queue
		o.queue = nil
		o.mu.Unlock()
		o.commit(reqs)
		o.mu.Lock()
	}
	o.leading = false
	o.mu.Unlock()
	return <-r.done
}

// commit writes reqs in one transaction. If that fails, each request is retried
// alone, so one bad batch cannot fail the others.
func (o *Outbox) commit(reqs []*request) {
	var dn, dsize int64
	per := map[string]int64{}
	err := o.db.Update(func(tx *bolt.Tx) error {
		dn, dsize = 0, 0
		clear(per)
		for _, r := range reqs {
			n, size, err := apply(tx, r.b, per)
			if err != nil {
				return err
			}
			dn, dsize = dn+n, dsize+size
		}
		return putSeq(tx, o.seq.Load())
	})
	if err != nil {
		e := error(fmt.Errorf("store commit: %w", err))
		o.lastErr.Store(&e)
	} else {
		o.lastErr.Store(nil)
	}
	if err == nil {
		o.commits.Add(1)
		o.tmu.Lock()
		for t, d := range per {
			o.perTarget[t] += d
		}
		o.tmu.Unlock()
		o.count.Add(dn)
		o.pending.Add(dsize)
		for _, r := range reqs {
			r.done <- nil
		}
		return
	}
	if len(reqs) == 1 {
		reqs[0].done <- fmt.Errorf("store commit: %w", err)
		return
	}
	for _, r := range reqs {
		o.commit([]*request{r})
	}
}

func putSeq(tx *bolt.Tx, seq uint64) error {
	return tx.Bucket(bMeta).Put([]byte("seq"), binary.BigEndian.AppendUint64(nil, seq))
}

// apply writes one batch and returns the change in outbox jobs and bytes.
func apply(tx *bolt.Tx, b *Batch, per map[string]int64) (dn, dsize int64, err error) {
	out, dead := tx.Bucket(bOut), tx.Bucket(bDead)
	put := func(j *Job) error {
		if j.Seq == 0 {
			return errors.New("job without sequence number")
		}
		tb, err := out.CreateBucketIfNotExists([]byte(j.Target))
		if err != nil {
			return err
		}
		v := j.encode()
		if old := tb.Get(seqKey(j.Seq)); old != nil {
			dn--
			dsize -= int64(len(old))
			per[j.Target]--
		}
		dn++
		dsize += int64(len(v))
		per[j.Target]++
		return tb.Put(seqKey(j.Seq), v)
	}
	del := func(j *Job) error {
		tb := out.Bucket([]byte(j.Target))
		if tb == nil {
			return nil
		}
		if old := tb.Get(seqKey(j.Seq)); old != nil {
			dn--
			dsize -= int64(len(old))
			per[j.Target]--
			return tb.Delete(seqKey(j.Seq))
		}
		return nil
	}
	for _, j := range b.Put {
		if err := put(j); err != nil {
			return 0, 0, err
		}
	}
	for _, j := range b.Done {
		if err := del(j); err != nil {
			return 0, 0, err
		}
	}
	for _, j := range b.Dead {
		if err := del(j); err != nil {
			return 0, 0, err
		}
		if err := dead.Put(seqKey(j.Seq), j.encode()); err != nil {
			return 0, 0, err
		}
	}
	for _, seq := range b.Discard {
		if err := dead.Delete(seqKey(seq)); err != nil {
			return 0, 0, err
		}
	}
	for _, set := range []struct {
		bucket []byte
		kvs    []KV
	}{{bState, b.States}, {bMeta, b.Meta}, {bReplay, b.Replay}} {
		bk := tx.Bucket(set.bucket)
		for _, kv := range set.kvs {
			if kv.Value == nil {
				err = bk.Delete(kv.Key)
			} else {
				err = bk.Put(kv.Key, kv.Value)
			}
			if err != nil {
				return 0, 0, err
			}
		}
	}
	marks := tx.Bucket(bMarks)
	for _, m := range b.Marks {
		v := binary.BigEndian.AppendUint64(nil, m.Hash)
		v = binary.BigEndian.AppendUint64(v, m.N)
		if err := marks.Put(binary.BigEndian.AppendUint16(nil, m.PacketID), v); err != nil {
			return 0, 0, err
		}
	}
	if b.MarkN != 0 {
		if err := tx.Bucket(bMeta).Put([]byte("mark_n"), binary.BigEndian.AppendUint64(nil, b.MarkN)); err != nil {
			return 0, 0, err
		}
	}
	return dn, dsize, nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq) }

// Targets returns the targets that have jobs in the outbox.
func (o *Outbox) Targets() ([]string, error) {
	var ts []string
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bOut).ForEachBucket(func(k []byte) error {
			if first, _ := tx.Bucket(bOut).Bucket(k).Cursor().First(); first != nil {
				ts = append(ts, string(k))
			}
			return nil
		})
	})
	return ts, err
}

// Scan calls fn for up to max jobs of target with Seq >= from, in Seq order,
// and returns the Seq after the last one visited (0 when the end was reached).
// Undecodable records are moved aside (bucket "corrupt") and counted in corrupt.
func (o *Outbox) Scan(target string, from uint64, max int, fn func(*Job)) (next uint64, corrupt int, err error) {
	var bad [][]byte
	err = o.db.View(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bOut).Bucket([]byte(target))
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		n := 0
		for k, v := c.Seek(seqKey(from)); k != nil; k, v = c.Next() {
			if n == max {
				next = binary.BigEndian.Uint64(k)
				return nil
			}
			j, err := decodeJob(v)
			if err != nil || len(k) != 8 {
				bad = append(bad, append([]byte(nil), k...))
				continue
			}
			j.Seq = binary.BigEndian.Uint64(k)
			j.Target = target
			fn(j)
			n++
		}
		return nil
	})
	if err == nil && len(bad) > 0 {
		err = o.quarantine(target, bad)
	}
	return next, len(bad), err
}

// quarantine moves undecodable outbox records to the corrupt bucket.
func (o *Outbox) quarantine(target string, keys [][]byte) error {
	err := o.db.Update(func(tx *bolt.Tx) error {
		tb := tx.Bucket(bOut).Bucket([]byte(target))
		cb := tx.Bucket(bCorrupt)
		for _, k := range keys {
			v := tb.Get(k)
			if v == nil {
				continue
			}
			if err := cb.Put(append([]byte(target+"\x00"), k...), v); err != nil {
				return err
			}
			if err := tb.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return o.recount()
}

// DeadLetters calls fn for every dead letter, oldest first.
func (o *Outbox) DeadLetters(fn func(*Job)) error {
	return o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDead).ForEach(func(k, v []byte) error {
			j, err := decodeJob(v)
			if err != nil || len(k) != 8 {
				return nil
			}
			j.Seq = binary.BigEndian.Uint64(k)
			fn(j)
			return nil
		})
	})
}

// NewestDeadLetters calls fn for at most n dead letters, newest first.
func (o *Outbox) NewestDeadLetters(n int, fn func(*Job)) error {
	return o.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bDead).Cursor()
		for k, v := c.Last(); k != nil && n > 0; k, v = c.Prev() {
			j, err := decodeJob(v)
			if err != nil || len(k) != 8 {
				continue
			}
			j.Seq = binary.BigEndian.Uint64(k)
			fn(j)
			n--
		}
		return nil
	})
}

// DeadCounts returns how many dead letters each target has. It reads only
// each record's target, not its body.
func (o *Outbox) DeadCounts() (map[string]int, error) {
	counts := map[string]int{}
	err := o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bDead).ForEach(func(_, v []byte) error {
			if t, ok := jobTarget(v); ok {
				counts[t]++
			}
			return nil
		})
	})
	return counts, err
}

// DeadLetter returns one dead letter, or nil.
func (o *Outbox) DeadLetter(seq uint64) (*Job, error) {
	var j *Job
	err := o.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bDead).Get(seqKey(seq))
		if v == nil {
			return nil
		}
		var err error
		if j, err = decodeJob(v); err == nil {
			j.Seq = seq
		}
		return err
	})
	return j, err
}

// States calls fn for every stored rule state.
func (o *Outbox) States(fn func(key, value []byte)) error {
	return o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bState).ForEach(func(k, v []byte) error {
			fn(k, v)
			return nil
		})
	})
}

// Marks returns the stored MQTT redelivery marks and the message counter.
func (o *Outbox) Marks() (map[uint16]Mark, uint64, error) {
	marks := map[uint16]Mark{}
	var n uint64
	err := o.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bMeta).Get([]byte("mark_n")); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return tx.Bucket(bMarks).ForEach(func(k, v []byte) error {
			if len(k) == 2 && len(v) == 16 {
				id := binary.BigEndian.Uint16(k)
				marks[id] = Mark{PacketID: id, Hash: binary.BigEndian.Uint64(v), N: binary.BigEndian.Uint64(v[8:])}
			}
			return nil
		})
	})
	return marks, n, err
}

// ClearMarks forgets every MQTT redelivery mark (the broker session changed).
func (o *Outbox) ClearMarks() error {
	return o.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bMarks); err != nil {
			return err
		}
		_, err := tx.CreateBucket(bMarks)
		return err
	})
}

// Meta returns a named value, or nil.
func (o *Outbox) Meta(key string) ([]byte, error) {
	var v []byte
	err := o.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bMeta).Get([]byte(key)))
		return nil
	})
	return v, err
}

// Replay returns the stored value for an inbound replay key, or nil.
func (o *Outbox) Replay(key []byte) ([]byte, error) {
	var v []byte
	err := o.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bReplay).Get(key))
		return nil
	})
	return v, err
}

// ReplayKeys calls fn for every inbound replay key and value.
func (o *Outbox) ReplayKeys(fn func(k, v []byte)) error {
	return o.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bReplay).ForEach(func(k, v []byte) error {
			fn(k, v)
			return nil
		})
	})
}

// LastError returns the error of the most recent commit, or nil when it succeeded.
func (o *Outbox) LastError() error {
	if e := o.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}
