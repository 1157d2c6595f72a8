package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/seed7aeb0c6e/jwtcache"
	"github.com/seed7aeb0c6e/jwtcache/internal/testkit"
	"github.com/seed7aeb0c6e/jwtcache/redisstore"
)

// The tests in this file run the store on the two highly available Redis
// topologies the package supports, Cluster and Sentinel, built from real
// redis-server processes on 127.0.0.1, and kill the master under a fleet.
// Failover is real time: the node and down-after timeouts are set low (one
// second), and every wait for the topology is bounded.

const (
	// haTimeout bounds every wait for a topology to form or fail over:
	// testkit.Eventually's, and the test's own below.
	haTimeout = testkit.EventuallyWithin
	// haPoll is how often the test's own waits look.
	haPoll = 50 * time.Millisecond
)

// info returns a field of the process's INFO section, or "" if it does not
// answer.
func (p *redisProc) info(section, field string) string {
	c := p.admin()
	defer c.Close()
	s, err := c.Info(context.Background(), section).Result()
	if err != nil {
		return ""
	}
	return infoField(s, field)
}

// infoField returns the value of field in the output of INFO or CLUSTER INFO.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// redisCluster is a Redis Cluster of three masters with a replica each.
type redisCluster struct {
	nodes []*redisProc
	dead  map[string]bool // addresses of the nodes the test killed
}

// startCluster starts six nodes and makes them a cluster with redis-cli
// --cluster create, then waits until every node reports cluster_state:ok,
// knows the five others, and every replica is in sync with its master.
func startCluster(t *testing.T) *redisCluster {
	t.Helper()
	cli := redisBin(t, "redis-cli")
	dir := t.TempDir()
	// A client port and a cluster bus port each (cluster-port, Redis 7.0 and
	// later: the default, the client port plus 10000, may be taken or out of
	// range).
	ports := testkit.FreePorts(t, 12)
	rc := &redisCluster{dead: map[string]bool{}}
	for i := range 6 {
		port, bus := ports[2*i], ports[2*i+1]
		rc.nodes = append(rc.nodes, startProc(t, fmt.Sprintf("node-%d", port), dir, port,
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "1000",
			"--cluster-port", strconv.Itoa(bus),
			"--cluster-announce-ip", "127.0.0.1"))
	}
	args := []string{"--cluster", "create"}
	for _, n := range rc.nodes {
		args = append(args, n.addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), haTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range rc.nodes {
		testkit.Eventually(t, n.name+" reports cluster_state:ok and knows 6 nodes", func() bool {
			return rc.clusterInfo(n, "cluster_state") == "ok" && rc.clusterInfo(n, "cluster_known_nodes") == "6"
		})
		// A replica that never synced would refuse to fail over (its data
		// would be too old, see cluster-replica-validity-factor).
		if n.info("replication", "role") == "slave" {
			testkit.Eventually(t, n.name+" is in sync with its master", func() bool {
				return n.info("replication", "master_link_status") == "up"
			})
		}
	}
	return rc
}

func (rc *redisCluster) clusterInfo(n *redisProc, field string) string {
	c := n.admin()
	defer c.Close()
	s, err := c.ClusterInfo(context.Background()).Result()
	if err != nil {
		return ""
	}
	return infoField(s, field)
}

// client returns a cluster client, seeded with every node, as a replica of a
// fleet would configure it.
func (rc *redisCluster) client(t *testing.T) redis.UniversalClient {
	var addrs []string
	for _, n := range rc.nodes {
		addrs = append(addrs, n.addr())
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:       addrs,
		DialTimeout: 100 * time.Millisecond,
		// The default ClusterStateReloadInterval (60s): the store has the
		// client reload the cluster's layout when a call fails, so that the
		// fleet shares again soon after a failover.
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// live returns the nodes the test has not killed.
func (rc *redisCluster) live() []*redisProc {
	var live []*redisProc
	for _, n := range rc.nodes {
		if !rc.dead[n.addr()] {
			live = append(live, n)
		}
	}
	return live
}

// slotMaster returns the address of the master serving slot as a live node
// sees it (CLUSTER SHARDS: the shard's node with the role master that is
// online), or "" if no live node answers or none serves the slot.
func (rc *redisCluster) slotMaster(slot int64) string {
	for _, n := range rc.live() {
		c := n.admin()
		shards, err := c.ClusterShards(context.Background()).Result()
		c.Close()
		if err != nil {
			continue
		}
		for _, sh := range shards {
			if !slices.ContainsFunc(sh.Slots, func(r redis.SlotRange) bool { return r.Start <= slot && slot <= r.End }) {
				continue
			}
			for _, node := range sh.Nodes {
				if node.Role == "master" && node.Health == "online" {
					return net.JoinHostPort(node.IP, strconv.FormatInt(node.Port, 10))
				}
			}
		}
		return ""
	}
	return ""
}

// storeKeys returns every key the stores wrote, by the address of the master
// holding it.
func (rc *redisCluster) storeKeys(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	keys := map[string][]string{}
	for _, n := range rc.live() {
		c := n.admin()
		if n.info("replication", "role") == "master" {
			ks, err := c.Keys(context.Background(), pattern).Result()
			if err != nil {
				t.Fatalf("KEYS on %s: %v", n.name, err)
			}
			if len(ks) > 0 {
				keys[n.addr()] = ks
			}
		}
		c.Close()
	}
	return keys
}

// keySlot returns the hash slot of key, as the cluster computes it.
func (rc *redisCluster) keySlot(t *testing.T, key string) int64 {
	t.Helper()
	c := rc.live()[0].admin()
	defer c.Close()
	slot, err := c.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	return slot
}

// failMaster kills the master serving the slot of the stores' token key (the
// one key in the cluster ending in ":token"), and returns a function that
// waits until a replica serves that slot and the cluster is ok again.
func (rc *redisCluster) failMaster(t *testing.T) (await func()) {
	t.Helper()
	var tokenKeys []string
	for _, ks := range rc.storeKeys(t, "jwtcache:*:token") {
		tokenKeys = append(tokenKeys, ks...)
	}
	if len(tokenKeys) != 1 {
		t.Fatalf("token keys in the cluster = %v; want one", tokenKeys)
	}
	slot := rc.keySlot(t, tokenKeys[0])
	old := rc.slotMaster(slot)
	var master *redisProc
	for _, n := range rc.nodes {
		if n.addr() == old {
			master = n
		}
	}
	if master == nil {
		t.Fatalf("no node serves slot %d of %s (CLUSTER SLOTS names %q)", slot, tokenKeys[0], old)
	}
	// A lease taken just before the kill would survive in the replica for
	// the fetch timeout (real time) and keep the fleet from sharing for that
	// long. The fleet is idle between runs, so any lease is gone in moments.
	testkit.Eventually(t, "no lease is held", func() bool { return len(rc.storeKeys(t, "jwtcache:*:lease")) == 0 })
	t.Logf("killing %s, the master serving slot %d of %s", master.name, slot, tokenKeys[0])
	master.kill()
	rc.dead[old] = true
	return func() {
		t.Helper()
		testkit.Eventually(t, fmt.Sprintf("a replica serves slot %d", slot), func() bool {
			m := rc.slotMaster(slot)
			return m != "" && m != old
		})
		for _, n := range rc.live() {
			testkit.Eventually(t, n.name+" reports cluster_state:ok", func() bool { return rc.clusterInfo(n, "cluster_state") == "ok" })
		}
	}
}

// redisSentinel is a master, its replica and three Sentinels watching them
// (quorum two), under the master name "mymaster".
type redisSentinel struct {
	data      []*redisProc // the master first, then the replica
	sentinels []*redisProc
	dead      map[string]bool
}

// startSentinel starts the master, the replica and the Sentinels, and waits
// until the replica is in sync and every Sentinel knows the replica and the
// two other Sentinels, so that a failover can be agreed on.
func startSentinel(t *testing.T) *redisSentinel {
	t.Helper()
	dir := t.TempDir()
	ports := testkit.FreePorts(t, 5)
	rs := &redisSentinel{dead: map[string]bool{}}
	master := startProc(t, fmt.Sprintf("master-%d", ports[0]), dir, ports[0])
	replica := startProc(t, fmt.Sprintf("replica-%d", ports[1]), dir, ports[1],
		"--replicaof", "127.0.0.1", strconv.Itoa(ports[0]))
	rs.data = []*redisProc{master, replica}
	testkit.Eventually(t, "the replica is in sync", func() bool { return replica.info("replication", "master_link_status") == "up" })
	for _, port := range ports[2:] {
		// Sentinel rewrites its configuration file: one each, in the test's
		// directory.
		conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
		err := os.WriteFile(conf, []byte(fmt.Sprintf(`sentinel announce-ip 127.0.0.1
sentinel monitor mymaster 127.0.0.1 %d 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 2000
sentinel parallel-syncs mymaster 1
`, ports[0])), 0o600)
		if err != nil {
			t.Fatal(err)
		}
		rs.sentinels = append(rs.sentinels, startProc(t, fmt.Sprintf("sentinel-%d", port), dir, port, conf, "--sentinel"))
	}
	for _, s := range rs.sentinels {
		testkit.Eventually(t, s.name+" knows the replica and the other Sentinels", func() bool {
			c := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: 100 * time.Millisecond})
			defer c.Close()
			m, err := c.Master(context.Background(), "mymaster").Result()
			return err == nil && m["num-slaves"] == "1" && m["num-other-sentinels"] == "2"
		})
	}
	return rs
}

// client returns a Sentinel-backed client for mymaster, as a replica of a
// fleet would configure it.
func (rs *redisSentinel) client(t *testing.T) redis.UniversalClient {
	var addrs []string
	for _, s := range rs.sentinels {
		addrs = append(addrs, s.addr())
	}
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: addrs, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { c.Close() })
	return c
}

// masterAddr returns the master's address as every Sentinel reports it, or
// "" while they disagree or one does not answer.
func (rs *redisSentinel) masterAddr() string {
	addr := ""
	for _, s := range rs.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.addr(), DialTimeout: 100 * time.Millisecond})
		hp, err := c.GetMasterAddrByName(context.Background(), "mymaster").Result()
		c.Close()
		if err != nil || len(hp) != 2 {
			return ""
		}
		a := net.JoinHostPort(hp[0], hp[1])
		if addr != "" && a != addr {
			return ""
		}
		addr = a
	}
	return addr
}

// failMaster kills the current master and returns a function that waits
// until every Sentinel names the replica master and the replica says it is.
func (rs *redisSentinel) failMaster(t *testing.T) (await func()) {
	t.Helper()
	old := rs.masterAddr()
	var master, replica *redisProc
	for _, p := range rs.data {
		if p.addr() == old {
			master = p
		} else if !rs.dead[p.addr()] {
			replica = p
		}
	}
	if master == nil || replica == nil {
		t.Fatalf("the Sentinels name %q master; want one of the data nodes, with a live replica", old)
	}
	c := master.admin()
	testkit.Eventually(t, "no lease is held", func() bool { return len(c.Keys(context.Background(), "jwtcache:*:lease").Val()) == 0 })
	c.Close()
	t.Logf("killing %s, the master", master.name)
	master.kill()
	rs.dead[old] = true
	return func() {
		t.Helper()
		testkit.Eventually(t, "the Sentinels promote "+replica.name, func() bool {
			return rs.masterAddr() == replica.addr() && replica.info("replication", "role") == "master"
		})
	}
}

// haTopology is what fleetFailover needs of a Cluster or a Sentinel setup.
type haTopology interface {
	client(t *testing.T) redis.UniversalClient
	failMaster(t *testing.T) (await func())
}

// fleetFailover runs a fleet of 20 replicas over a topology, kills the master
// holding the fleet's token mid-run, and checks that callers never notice:
// no call fails, no token returned has expired, and once the topology has
// failed over (waited for in real time), the fleet shares tokens again.
//
// The bounds on fetches do not follow the refresh schedule closely, which may
// change: sharing means one fetch per lifetime fleet-wide, and a bound of one
// and a half per lifetime, plus a few for a refresh that races the failover
// or a write the replica did not get, is far below the one per lifetime per
// replica of a fleet that does not share.
func fleetFailover(t *testing.T, topo haTopology) {
	const (
		replicas = 20
		life     = 10 * time.Minute
		step     = 5 * time.Second
		perLife  = int(life / step)
	)
	logger, logs := testkit.NewLogger()
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range logs.Lines() {
				if !strings.Contains(line, "level=DEBUG") {
					t.Logf("cache log: %s", line)
				}
			}
		}
	})
	var clients []redis.UniversalClient
	f := newFleetOn(t, func() redis.UniversalClient {
		c := topo.client(t)
		clients = append(clients, c)
		return c
	}, replicas, life, jwtcache.Logger(logger))
	storeErrors := func() (n uint64) {
		for _, c := range f.caches {
			n += c.Stats().StoreErrors
		}
		return n
	}
	bound := func(lifetimes int) int64 { return int64(lifetimes*3/2 + 4) }
	// As a replica does at its start (a readiness check): each client finds
	// the master (asks the Sentinels, or loads the Cluster's slots) before
	// the run, so that this, under -race on a loaded machine, does not eat
	// the first store calls' deadline and make every replica fetch alone.
	for i, c := range clients {
		testkit.Eventually(t, fmt.Sprintf("client %d reaches the master", i), func() bool {
			return c.Ping(context.Background()).Err() == nil
		})
	}

	calls, failed := f.run(t, 2*perLife, step)
	callsBefore, shared := calls, f.fetches.Load()
	if failed != 0 {
		t.Fatalf("%d of %d calls failed before the failover; want none", failed, calls)
	}
	if shared > bound(2) {
		t.Fatalf("fetches fleet-wide before the failover = %d over 2 lifetimes; want sharing (at most %d)", shared, bound(2))
	}

	start := time.Now()
	await := topo.failMaster(t)
	// The master is gone: the fleet's store calls fail now.
	ctx := context.Background()
	if _, _, err := newStore(t, clients[0]).Load(ctx, "billing"); err == nil {
		t.Fatalf("Load() with the master killed = nil error; want the store to fail")
	}
	// One lifetime while the topology fails over: every replica refreshes in
	// it, on its own if the store is still down.
	calls, failed = f.run(t, perLife, step)
	callsDuring := calls
	if failed != 0 {
		t.Errorf("%d of %d calls failed during the failover; want none", failed, calls)
	}
	during, errorsDuring := f.fetches.Load()-shared, storeErrors()
	await()
	failover := time.Since(start)
	// The topology has failed over; each replica's client learns of it in
	// its own time (a cluster client on its next state reload, see
	// redisCluster.client). Wait for that too, so that what follows counts
	// the store's sharing, not the clients' catching up.
	var wg sync.WaitGroup
	for i, c := range clients {
		s := newStore(t, c)
		wg.Go(func() {
			deadline := time.Now().Add(haTimeout)
			for {
				_, _, err := s.Load(ctx, "billing")
				if err == nil || errors.Is(err, jwtcache.ErrNotFound) {
					return
				}
				if time.Now().After(deadline) {
					t.Errorf("replica %d's client still fails %v after the failover: %v", i, haTimeout, err)
					return
				}
				time.Sleep(haPoll)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	caughtUp := time.Since(start)

	// Three lifetimes after it: shared again.
	const after = 3
	before := f.fetches.Load()
	calls, failed = f.run(t, after*perLife, step)
	if failed != 0 {
		t.Errorf("%d of %d calls failed after the failover; want none", failed, calls)
	}
	fetched := f.fetches.Load() - before
	if fetched > bound(after) {
		t.Errorf("fetches fleet-wide in the %d lifetimes after the failover = %d; want sharing (at most %d, not %d)",
			after, fetched, bound(after), after*replicas)
	}

	// The stores work on the new master, through a client that lived through
	// the failover.
	s := newStore(t, clients[len(clients)-1])
	tok := minter.Mint(f.clock.Now(), life, nil)
	if err := s.Save(ctx, "after-failover", tok, f.clock.Now().Add(life)); err != nil {
		t.Errorf("Save() after the failover: %v", err)
	}
	if got, _, err := s.Load(ctx, "after-failover"); err != nil || got != tok {
		t.Errorf("Load() after the failover = %.10q, %v; want the token saved", got, err)
	}
	release, ok, err := s.Lease(ctx, "after-failover", time.Minute)
	if err != nil || !ok {
		t.Errorf("Lease() after the failover = %v, %v; want the lease", ok, err)
	} else if err := release(ctx, 0); err != nil {
		t.Errorf("release() after the failover: %v", err)
	}

	// A cache logs a store failure at most once a minute, so this sees the
	// first of each minute; the direct calls above and the round trip test
	// see every one.
	for _, line := range logs.Lines() {
		if strings.Contains(line, "CROSSSLOT") {
			t.Errorf("a cache logged a CROSSSLOT error: %s", line)
		}
	}
	t.Logf("%d replicas. Before the failover, 2 lifetimes: %d calls, %d fetches. Master killed: failover in %.1fs real time, "+
		"every client on the new master after %.1fs; the lifetime it began: %d calls, %d fetches, %d store errors. "+
		"After it, %d lifetimes: %d calls, %d fetches, %d store errors",
		replicas, callsBefore, shared, failover.Seconds(), caughtUp.Seconds(), callsDuring, during, errorsDuring,
		after, calls, fetched, storeErrors()-errorsDuring)
}

// storeRoundTrip saves, loads and leases through the topology, for many
// cache keys (and so, on a cluster, many slots), requiring no error.
func storeRoundTrip(t *testing.T, topo haTopology) {
	ctx := context.Background()
	a, b := newStore(t, topo.client(t)), newStore(t, topo.client(t))
	if _, _, err := a.Load(ctx, "billing"); !errors.Is(err, jwtcache.ErrNotFound) {
		t.Fatalf("Load() of a missing key: error = %v; want ErrNotFound", err)
	}
	for i := range 32 {
		key := fmt.Sprintf("tenant-%d", i)
		tok := minter.Mint(time.Now(), time.Hour, nil)
		expiry := time.Now().Add(time.Hour).Truncate(time.Millisecond)
		if err := a.Save(ctx, key, tok, expiry); err != nil {
			t.Fatalf("Save(%q): %v", key, err)
		}
		// Read back through another client.
		got, gotExpiry, err := b.Load(ctx, key)
		if err != nil || got != tok || !gotExpiry.Equal(expiry) {
			t.Errorf("Load(%q) = %.10q, %v, %v; want the token and %v", key, got, gotExpiry, err, expiry)
		}
		release, ok, err := a.Lease(ctx, key, time.Minute)
		if err != nil || !ok {
			t.Fatalf("Lease(%q) = %v, %v; want the lease", key, ok, err)
		}
		if _, ok, err := b.Lease(ctx, key, time.Minute); err != nil || ok {
			t.Errorf("second Lease(%q) = %v, %v; want it refused while held", key, ok, err)
		}
		// The release is a script: one key, so a cluster runs it.
		if err := release(ctx, 0); err != nil {
			t.Errorf("release() of %q's lease: %v", key, err)
		}
		releaseB, ok, err := b.Lease(ctx, key, time.Minute)
		if err != nil || !ok {
			t.Errorf("Lease(%q) after the release = %v, %v; want the lease", key, ok, err)
			continue
		}
		// Kept after a failed fetch: another script.
		if err := releaseB(ctx, time.Minute); err != nil {
			t.Errorf("release(keep) of %q's lease: %v", key, err)
		}
		if _, ok, err := a.Lease(ctx, key, time.Minute); err != nil || ok {
			t.Errorf("Lease(%q) of a kept lease = %v, %v; want it refused", key, ok, err)
		}
		// A rejected token goes, and only that one.
		if deleted, err := b.CompareAndDelete(ctx, key, minter.Mint(time.Now(), time.Hour, nil)); err != nil || deleted {
			t.Errorf("CompareAndDelete(%q) of another token = %v, %v; want false, nil", key, deleted, err)
		}
		if deleted, err := b.CompareAndDelete(ctx, key, tok); err != nil || !deleted {
			t.Errorf("CompareAndDelete(%q) = %v, %v; want true, nil", key, deleted, err)
		}
		if _, _, err := a.Load(ctx, key); !errors.Is(err, jwtcache.ErrNotFound) {
			t.Errorf("Load(%q) after CompareAndDelete: error = %v; want ErrNotFound", key, err)
		}
	}
}

func TestCluster_StoreRoundTrip(t *testing.T) {
	rc := startCluster(t)
	storeRoundTrip(t, rc)
	// The leases it kept are still there, and show it used every master.
	if got := rc.storeKeys(t, "jwtcache:*:lease"); len(got) != 3 {
		t.Errorf("masters holding the round trip's leases = %d; want all 3", len(got))
	}

	// A token and its lease live in one slot, so that a script may touch
	// both (the cluster would refuse it with CROSSSLOT otherwise). A prefix
	// of its own tells this cache's keys from the others'.
	ctx := context.Background()
	s := newStore(t, rc.client(t), redisstore.Prefix("slots"))
	if err := s.Save(ctx, "billing", minter.Mint(time.Now(), time.Hour, nil), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	release, ok, err := s.Lease(ctx, "billing", time.Minute)
	if err != nil || !ok {
		t.Fatalf("Lease() = %v, %v; want the lease", ok, err)
	}
	defer release(ctx, 0)
	slots, n := map[int64][]string{}, 0
	for _, ks := range rc.storeKeys(t, "slots:*") {
		for _, k := range ks {
			slot := rc.keySlot(t, k)
			slots[slot] = append(slots[slot], k)
			n++
		}
	}
	if n != 2 || len(slots) != 1 {
		t.Errorf("the keys of one cache key, by slot = %v; want a token and a lease, in one slot", slots)
	}
}

func TestSentinel_StoreRoundTrip(t *testing.T) {
	storeRoundTrip(t, startSentinel(t))
}

func TestCluster_FleetFailover(t *testing.T) {
	fleetFailover(t, startCluster(t))
}

func TestSentinel_FleetFailover(t *testing.T) {
	fleetFailover(t, startSentinel(t))
}
