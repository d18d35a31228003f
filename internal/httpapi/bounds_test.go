package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/geosearch/search/internal/geo"
)

// gatedStore holds every Search until its gate opens, or until the
// request's context ends, counting the searches inside and how they ended.
type gatedStore struct {
	geo.SearchService
	gate chan struct{}

	mu       sync.Mutex
	inside   int
	deadline int // searches ended by their context's deadline
}

func (g *gatedStore) Search(ctx context.Context, q geo.Query) (geo.Page, error) {
	g.mu.Lock()
	g.inside++
	g.mu.Unlock()
	select {
	case <-g.gate:
		return g.SearchService.Search(ctx, q)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			g.mu.Lock()
			g.deadline++
			g.mu.Unlock()
		}
		return geo.Page{}, ctx.Err()
	}
}

func (g *gatedStore) counts() (inside, deadline int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inside, g.deadline
}

// holdRequests sends n items requests that store holds at its gate, and
// returns once all n are inside it; their statuses arrive on the channel
// after releaseRequests.
func holdRequests(t *testing.T, a *api, store *gatedStore, n int) <-chan int {
	t.Helper()
	statuses := make(chan int, n)
	for range n {
		go func() {
			resp, err := a.client.Get(a.base + "/collections/default/items?limit=1")
			if err != nil {
				statuses <- 0
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if inside, _ := store.counts(); inside == n {
			return statuses
		}
		if time.Now().After(deadline) {
			close(store.gate)
			t.Fatal("the held requests never reached the store")
		}
	}
}

// releaseRequests opens store's gate and checks that every request
// holdRequests held ended with 200.
func releaseRequests(t *testing.T, store *gatedStore, statuses <-chan int) {
	t.Helper()
	close(store.gate)
	for range cap(statuses) {
		if got := <-statuses; got != http.StatusOK {
			t.Errorf("a held request ended with %d, want 200", got)
		}
	}
}

// TestRequestsBeyondTheCapAreRefusedAtOnce: with HTTP_MAX_IN_FLIGHT
// requests held in the store, one more is a 503 with Retry-After, answered
// while they are still held; readiness is still answered; the held ones
// finish once the store answers.
func TestRequestsBeyondTheCapAreRefusedAtOnce(t *testing.T) {
	t.Parallel()
	const maxInFlight = 3
	store := &gatedStore{gate: make(chan struct{})}
	a := start(t, func(s *setup) {
		s.cfg.MaxInFlight = maxInFlight
		s.wrap = func(svc geo.SearchService) geo.SearchService {
			store.SearchService = svc
			return store
		}
	})
	statuses := holdRequests(t, a, store, maxInFlight)

	r := a.get(t, "/collections/default/items?limit=1")
	wantException(t, "one request beyond the cap", r, http.StatusServiceUnavailable, "HTTP_MAX_IN_FLIGHT=3")
	if r.header.Get("Retry-After") == "" {
		t.Error("the 503 beyond the cap has no Retry-After")
	}
	if r := a.get(t, "/readyz"); r.status != http.StatusOK {
		t.Errorf("readiness with the cap reached: %d %s, want 200", r.status, r.body)
	}
	if inside, _ := store.counts(); inside != maxInFlight {
		t.Errorf("%d searches reached the store, want %d: the refused request must not", inside, maxInFlight)
	}

	releaseRequests(t, store, statuses)
	if got := a.metrics.count("http.items.errors.503"); got != 1 {
		t.Errorf("http.items.errors.503 = %d, want 1", got)
	}
	if r := a.get(t, "/collections/default/items?limit=1"); r.status != http.StatusOK {
		t.Errorf("after the held requests ended: %d %s, want 200", r.status, r.body)
	}
}

// TestARequestPastItsDeadlineIs504: HTTP_REQUEST_TIMEOUT cancels the
// store's work and answers 504.
func TestARequestPastItsDeadlineIs504(t *testing.T) {
	t.Parallel()
	store := &gatedStore{gate: make(chan struct{})} // never opens
	a := start(t, func(s *setup) {
		s.cfg.RequestTimeout = 2 * time.Second // long enough for the collection lookup before the search
		s.wrap = func(svc geo.SearchService) geo.SearchService {
			store.SearchService = svc
			return store
		}
	})
	r := a.get(t, "/collections/default/items")
	wantException(t, "past the deadline", r, http.StatusGatewayTimeout, "deadline")
	if _, deadline := store.counts(); deadline != 1 {
		t.Errorf("%d searches ended by their deadline, want 1", deadline)
	}
}

// TestItemsPagesEndAtTheByteBudget: pages of large geometries end early at
// MAX_PAGE_BYTES with a next link, and the links still walk every thing
// once.
func TestItemsPagesEndAtTheByteBudget(t *testing.T) {
	t.Parallel()
	a := start(t, func(s *setup) {
		s.limits.MaxPageSize = 200
		s.limits.MaxPageBytes = 64 << 10
	})
	seen := map[any]bool{}
	pages, short := 0, 0
	for next := "/collections/default/items?limit=200"; next != ""; pages++ {
		if pages > 200 {
			t.Fatal("more than 200 pages: the next links loop")
		}
		r := a.get(t, next)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", next, r.status, r.body)
		}
		if len(r.body) > 64<<10+256<<10 { // the budget and the one thing that crossed it
			t.Errorf("a page of %d bytes, budget 64 KiB", len(r.body))
		}
		body := r.json(t)
		features := body["features"].([]any)
		if len(features) == 0 {
			t.Fatalf("%s: an empty page", next)
		}
		for _, f := range features {
			id := f.(map[string]any)["id"]
			if seen[id] {
				t.Errorf("feature %v answered twice", id)
			}
			seen[id] = true
		}
		next = ""
		for _, l := range body["links"].([]any) {
			if l := l.(map[string]any); l["rel"] == "next" {
				next = l["href"].(string)
				if len(features) < 200 {
					short++
				}
			}
		}
		if next != "" {
			u, err := url.Parse(next)
			if err != nil {
				t.Fatal(err)
			}
			next = u.RequestURI()
		}
	}
	if len(seen) != 177 {
		t.Errorf("walked %d features, want the 177 countries", len(seen))
	}
	if short == 0 || pages < 2 {
		t.Errorf("%d pages, %d ended by the budget: the budget cut no page", pages, short)
	}
}

// TestRequestsWaitForADatabaseSlotAtMostTheQueueTimeout: with every
// database slot (Deps.DBConns) held by a request in the store, one more
// request that reads the database waits HTTP_QUEUE_TIMEOUT, then is a 503
// with Retry-After that never reached the store, although it was within
// HTTP_MAX_IN_FLIGHT; a request answered from memory is still answered;
// the held ones finish once the store answers.
func TestRequestsWaitForADatabaseSlotAtMostTheQueueTimeout(t *testing.T) {
	t.Parallel()
	const slots = 2
	store := &gatedStore{gate: make(chan struct{})}
	a := start(t, func(s *setup) {
		s.cfg.MaxInFlight = 10
		s.cfg.QueueTimeout = 200 * time.Millisecond
		s.cfg.RequestTimeout = 30 * time.Second // without the slots, the request beyond them ends here
		s.dbConns = slots
		s.wrap = func(svc geo.SearchService) geo.SearchService {
			store.SearchService = svc
			return store
		}
	})
	statuses := holdRequests(t, a, store, slots)

	r := a.get(t, "/collections/default/items?limit=1")
	wantException(t, "one request beyond the database slots", r, http.StatusServiceUnavailable, "HTTP_QUEUE_TIMEOUT")
	if r.header.Get("Retry-After") == "" {
		t.Error("the 503 of a request that found no database slot has no Retry-After")
	}
	if r := a.get(t, "/conformance"); r.status != http.StatusOK {
		t.Errorf("a route answered from memory with every database slot held: %d %s, want 200", r.status, r.body)
	}
	if inside, _ := store.counts(); inside != slots {
		t.Errorf("%d searches reached the store, want %d: the refused request must not", inside, slots)
	}

	releaseRequests(t, store, statuses)
	if r := a.get(t, "/collections/default/items?limit=1"); r.status != http.StatusOK {
		t.Errorf("after the held requests ended: %d %s, want 200", r.status, r.body)
	}
}
