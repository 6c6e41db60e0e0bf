package main

import (
	"io"
	"net/http"
	"sync"
)

// syncWriter serialises writes of two streams into one writer, flushing HTTP responses as it goes.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.w.Write(p)
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
	return n, err
}

// limitWriter fails once more than n bytes were asked to be written (after writing up to n).
type limitWriter struct {
	w io.Writer
	n int64
}

var errLimitReached = io.ErrShortWrite

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errLimitReached
	}
	if int64(len(p)) > l.n {
		n, err := l.w.Write(p[:l.n])
		l.n -= int64(n)
		if err == nil {
			err = errLimitReached
		}
		return n, err
	}
	n, err := l.w.Write(p)
	l.n -= int64(n)
	return n, err
}

// flushWriter flushes an HTTP response after every write (log follow must not sit in a buffer).
type flushWriter struct {
	w http.ResponseWriter
}

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
	return n, err
}
