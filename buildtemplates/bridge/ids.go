package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"io"
	"strconv"
	"sync"
	"time"
)

// A buffered crypto/rand reader: one getrandom syscall per ~250 ids.
var rnd = struct {
	sync.Mutex
	r *bufio.Reader
}{r: bufio.NewReaderSize(rand.Reader, 4096)}

func randBytes(b []byte) {
	rnd.Lock()
	_, err := io.ReadFull(rnd.r, b)
	rnd.Unlock()
	if err != nil {
		panic("fnctl-bridge: crypto/rand failed: " + err.Error())
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	randBytes(b)
	return hex.EncodeToString(b)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	randBytes(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// newTraceID returns an X-Ray trace header:
// Root=1-<8 hex epoch seconds>-<24 hex>;Parent=<16 hex>;Sampled=0
func newTraceID(now time.Time) string {
	var b [20]byte
	randBytes(b[:])
	var s [82]byte
	out := append(s[:0], "Root=1-"...)
	ts := strconv.FormatUint(uint64(now.Unix())&0xffffffff, 16)
	for i := len(ts); i < 8; i++ {
		out = append(out, '0')
	}
	out = append(out, ts...)
	out = append(out, '-')
	var h [40]byte
	hex.Encode(h[:], b[:])
	out = append(out, h[:24]...)
	out = append(out, ";Parent="...)
	out = append(out, h[24:40]...)
	out = append(out, ";Sampled=0"...)
	return string(out)
}
