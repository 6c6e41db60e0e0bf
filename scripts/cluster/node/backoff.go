package main

// A per-key exponential back-off with the semantics of client-go util/flowcontrol.Backoff,
// which the kubelet uses for image pulls and crash loops.

import (
	"sync"
	"time"
)

type backoffEntry struct {
	delay      time.Duration
	lastUpdate time.Time
}

type backoff struct {
	mu      sync.Mutex
	initial time.Duration
	max     time.Duration
	entries map[string]*backoffEntry
}

func newBackoff(initial, max time.Duration) *backoff {
	return &backoff{initial: initial, max: max, entries: map[string]*backoffEntry{}}
}

// expired: an entry not touched for twice the maximum starts over (a container that ran
// 10 minutes restarts without delay).
func (b *backoff) expired(e *backoffEntry, eventTime time.Time) bool {
	return eventTime.Sub(e.lastUpdate) > 2*b.max
}

// next records one more failure at eventTime and grows the delay.
func (b *backoff) next(key string, eventTime time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(e, eventTime) {
		b.entries[key] = &backoffEntry{delay: b.initial, lastUpdate: time.Now()}
		return
	}
	e.delay = min(2*e.delay, b.max)
	e.lastUpdate = time.Now()
}

// get is the current delay of key (0 without an entry).
func (b *backoff) get(key string) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[key]; ok {
		return e.delay
	}
	return 0
}

// inBackoffSince: the delay since eventTime has not passed yet.
func (b *backoff) inBackoffSince(key string, eventTime time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(e, eventTime) {
		return false
	}
	return time.Since(eventTime) < e.delay
}

// inBackoffSinceUpdate: the delay since the last failure has not passed yet.
func (b *backoff) inBackoffSinceUpdate(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[key]
	if !ok || b.expired(e, now) {
		return false
	}
	return now.Sub(e.lastUpdate) < e.delay
}

func (b *backoff) reset(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, key)
}

// forget drops every key with the prefix (a pod that is gone).
func (b *backoff) forget(prefix string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.entries {
		if len(k) >= len(prefix) && k[:len(prefix)] == prefix {
			delete(b.entries, k)
		}
	}
}

// until is when the current delay of key ends, counted from its last failure.
func (b *backoff) until(key string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e, ok := b.entries[key]; ok {
		return e.lastUpdate.Add(e.delay)
	}
	return time.Now()
}
