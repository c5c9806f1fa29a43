package integration

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/provlog/provlog/proto/provlog/v1"
)

// replicaLoad appends distinct entries through every replica of a set
// and records what each one acknowledged, and polls every replica's
// checkpoint, until stopped.
type replicaLoad struct {
	rs   *replicaSet
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	acked   map[string]uint64 // entry → the index acknowledged
	ackedBy []int             // acknowledgements by replica
	after   []int             // acknowledgements by replica since mark
	firstAt time.Time         // the first acknowledgement since mark
	markAt  time.Time
	seen    map[uint64][]byte // size → root of every checkpoint seen
	errs    []error
	dead    map[int]bool // replicas killed: their errors do not count
}

// startReplicaLoad starts writers per replica and a checkpoint poller.
func startReplicaLoad(ctx context.Context, rs *replicaSet, writers int) *replicaLoad {
	l := &replicaLoad{rs: rs, stop: make(chan struct{}), acked: map[string]uint64{},
		ackedBy: make([]int, rs.len()), after: make([]int, rs.len()), seen: map[uint64][]byte{}, dead: map[int]bool{}}
	for i := range rs.len() {
		for w := range writers {
			l.wg.Add(1)
			go l.write(ctx, i, w)
		}
	}
	l.wg.Add(1)
	go l.poll(ctx)
	return l
}

func (l *replicaLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *replicaLoad) isDead(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.dead[i]
}

// kill SIGKILLs replica i and marks the time: acknowledgements are
// counted afresh from now.
func (l *replicaLoad) kill(i int) time.Time {
	l.mu.Lock()
	l.dead[i] = true
	l.mu.Unlock()
	l.rs.replica(i).kill()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.markAt, l.firstAt = time.Now(), time.Time{}
	l.after = make([]int, l.rs.len())
	return l.markAt
}

// write appends entries through replica i, each retried (the same bytes:
// a retry deduplicates) while the answer is retryable.
func (l *replicaLoad) write(ctx context.Context, i, w int) {
	defer l.wg.Done()
	d := l.rs.replica(i)
	for n := 0; ; n++ {
		entry := fmt.Sprintf("replica %d writer %d entry %d", i, w, n)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			res, err := d.Log.Append(cctx, &pb.AppendRequest{Entry: []byte(entry)})
			cancel()
			if err == nil {
				l.ack(i, entry, res.Index)
				break
			}
			if l.isDead(i) {
				return
			}
			switch status.Code(err) {
			case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
				time.Sleep(20 * time.Millisecond)
			default:
				l.fail(fmt.Errorf("replica %d: Append: %w", i, err))
				return
			}
		}
	}
}

func (l *replicaLoad) ack(i int, entry string, index uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.acked[entry]; ok && old != index {
		l.errs = append(l.errs, fmt.Errorf("%q acknowledged at %d and at %d", entry, old, index))
	}
	l.acked[entry] = index
	l.ackedBy[i]++
	l.after[i]++
	if l.firstAt.IsZero() && !l.markAt.IsZero() {
		l.firstAt = time.Now()
	}
}

// poll reads every live replica's checkpoint: a size always has one root,
// and no replica's tree shrinks.
func (l *replicaLoad) poll(ctx context.Context) {
	defer l.wg.Done()
	last := make([]uint64, l.rs.len())
	for {
		select {
		case <-l.stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		for i := range l.rs.len() {
			if l.isDead(i) {
				continue
			}
			cp, err := fetchCheckpoint(ctx, l.rs.replica(i).HTTPURL, l.rs.Verifier)
			if err != nil {
				if !l.isDead(i) {
					l.fail(fmt.Errorf("replica %d: %w", i, err))
				}
				continue
			}
			if cp.Size < last[i] {
				l.fail(fmt.Errorf("replica %d: checkpoint size went back from %d to %d", i, last[i], cp.Size))
			}
			last[i] = cp.Size
			l.mu.Lock()
			if root, ok := l.seen[cp.Size]; ok && !bytes.Equal(root, cp.Root) {
				l.errs = append(l.errs, fmt.Errorf("two checkpoints of size %d: roots %x and %x", cp.Size, root, cp.Root))
			}
			l.seen[cp.Size] = cp.Root
			l.mu.Unlock()
		}
	}
}

// halt stops the load and waits for it; it fails t with the errors met.
func (l *replicaLoad) halt(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	for _, err := range l.errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// maxSeen returns the largest checkpoint size seen so far and its root.
func (l *replicaLoad) maxSeen() (uint64, []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var size uint64
	for s := range l.seen {
		size = max(size, s)
	}
	return size, l.seen[size]
}

// verifyReplicas checks the log replica i serves, once every replica not
// in skip serves the same checkpoint: every entry read from the entry
// bundles, the root and every hash tile recomputed with sumdb/tlog, every
// acknowledged entry at its index, every checkpoint seen a prefix of the
// tree, and the consistency proofs from sizes (checkpoints seen) to it
// verified.
func (l *replicaLoad) verify(ctx context.Context, t *testing.T, i int, sizes []uint64, skip ...int) {
	t.Helper()
	d := l.rs.replica(i)
	cp, err := fetchCheckpoint(ctx, d.HTTPURL, l.rs.Verifier)
	if err != nil {
		t.Fatal(err)
	}
	for j := range l.rs.len() {
		if contains(skip, j) {
			continue
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			o, err := fetchCheckpoint(ctx, l.rs.replica(j).HTTPURL, l.rs.Verifier)
			if err == nil && bytes.Equal(o.Raw, cp.Raw) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d serves %+v, replica %d serves size %d (err %v)", j, o.Size, i, cp.Size, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	refs := bundlesForSize(cp.Size)
	bodies, err := fetchAll(ctx, d.HTTPURL, refs)
	if err != nil {
		t.Fatal(err)
	}
	var entries [][]byte
	for k, b := range bodies {
		es, err := parseBundle(b)
		if err != nil || len(es) != refs[k].Width {
			t.Fatalf("%s: %d entries (%v), want %d", refs[k].Path(), len(es), err, refs[k].Width)
		}
		entries = append(entries, es...)
	}
	hs, err := newHashStore(entries)
	if err != nil {
		t.Fatal(err)
	}
	root, err := hs.treeHash(cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(root, cp.Root) {
		t.Fatalf("root recomputed from the %d entries %x != checkpoint root %x", cp.Size, root, cp.Root)
	}
	tiles := tilesForSize(cp.Size)
	tbodies, err := fetchAll(ctx, d.HTTPURL, tiles)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range tiles {
		want, err := hs.tileData(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tbodies[k], want) {
			t.Fatalf("%s differs from the tile sumdb/tlog computes", r.Path())
		}
	}
	l.mu.Lock()
	lost := 0
	for e, idx := range l.acked {
		if idx >= cp.Size || string(entries[idx]) != e {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged %q at %d; the log has %d entries", e, idx, cp.Size)
			}
		}
	}
	for size, r := range l.seen {
		if size > cp.Size {
			t.Errorf("checkpoint of size %d seen beyond the tree of size %d", size, cp.Size)
			continue
		}
		if want, _ := hs.treeHash(size); size > 0 && !bytes.Equal(r, want) {
			t.Errorf("checkpoint of size %d seen with root %x; the tree has %x", size, r, want)
		}
	}
	acked := len(l.acked)
	l.mu.Unlock()
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged entries lost", lost, acked)
	}
	for _, from := range sizes {
		if from == 0 || from == cp.Size {
			continue
		}
		old, _ := hs.treeHash(from)
		res, err := d.Log.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: from, ToSize: cp.Size})
		if err != nil {
			t.Fatalf("GetConsistencyProof(%d, %d): %v", from, cp.Size, err)
		}
		if err := proof.VerifyConsistency(hasher, from, cp.Size, res.Proof, old, cp.Root); err != nil {
			t.Fatalf("consistency proof from %d to %d: %v", from, cp.Size, err)
		}
	}
	t.Logf("verified: %d entries, %d acknowledged, %d checkpoints seen", cp.Size, acked, len(l.seen))
}

// TestReplicasSIGKILLLeader runs three provlogd replicas on one
// PostgreSQL database under appends through every replica, SIGKILLs the
// leader, and checks: a new leader within the lease TTL plus one renewal,
// appends through the followers acknowledged after the kill, no
// acknowledged entry lost, the tree (entries, root, every hash tile)
// recomputed with sumdb/tlog, one root per size across all replicas, and
// consistency from the checkpoints seen before and after the kill.
func TestReplicasSIGKILLLeader(t *testing.T) {
	ctx := t.Context()
	rs := startReplicas(t, 3)
	leader, lh, _, err := rs.waitLeader(ctx, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	l := startReplicaLoad(ctx, rs, 2)
	time.Sleep(1500 * time.Millisecond)
	before, _ := l.maxSeen()
	l.mu.Lock()
	ackedBefore := append([]int(nil), l.ackedBy...)
	l.mu.Unlock()
	for i, n := range ackedBefore {
		if n == 0 {
			t.Fatalf("replica %d acknowledged no append before the kill (%v)", i, ackedBefore)
		}
	}

	killedAt := l.kill(leader)
	bound := rs.TTL + rs.TTL/3
	next, nh, took, err := rs.waitLeader(ctx, bound+5*time.Second, leader)
	if err != nil {
		l.halt(t)
		t.Fatal(err)
	}
	if nh.Epoch <= lh.Epoch {
		t.Errorf("new leader's epoch %d, the old one's %d", nh.Epoch, lh.Epoch)
	}
	if took > bound {
		t.Errorf("a new leader after %v, want within the lease TTL plus one renewal (%v)", took, bound)
	}
	var firstAck time.Time
	for deadline := time.Now().Add(10 * time.Second); ; {
		l.mu.Lock()
		firstAck = l.firstAt
		l.mu.Unlock()
		if !firstAck.IsZero() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("SIGKILL of leader %d (epoch %d): replica %d leads (epoch %d) after %v; first acknowledged append %v after the kill",
		leader, lh.Epoch, next, nh.Epoch, took.Round(time.Millisecond), firstAck.Sub(killedAt).Round(time.Millisecond))
	afterKill, _ := l.maxSeen()
	time.Sleep(1500 * time.Millisecond)
	l.halt(t)
	for i, n := range l.after {
		if i != leader && n == 0 {
			t.Errorf("replica %d acknowledged no append after the kill (%v)", i, l.after)
		}
	}
	l.verify(ctx, t, next, []uint64{before, afterKill}, leader)
}
