package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc"

	searchv1 "github.com/geosearch/search/proto/search/v1"

	"github.com/geosearch/search/internal/grpcapi"
)

// Locate's bulk form: many points per message (LocateRequest.points), one
// message per point each way saved.
const (
	defaultPointsPerMessage = 500
	maxPointsPerMessage     = 10000 // the server's limit
)

// nextMessage returns the next message to send: up to perMessage points,
// fewer when the input has nothing buffered (the next read may wait, as on
// a terminal, and the points read so far are sent first), a message per
// point when perMessage is 1; io.EOF after the last.
func (p *pointReader) nextMessage() (*searchv1.LocateRequest, error) {
	if p.perMessage <= 1 {
		return p.next()
	}
	var msg *searchv1.LocateRequest
	for msg == nil || len(msg.Points) < p.perMessage {
		if msg != nil && p.src != nil && p.src.Buffered() == 0 {
			break
		}
		req, err := p.next()
		if errors.Is(err, io.EOF) && msg != nil {
			break
		}
		if err != nil {
			return nil, err
		}
		if msg == nil {
			msg = &searchv1.LocateRequest{Points: make([]*searchv1.LocatePoint, 0, p.perMessage)}
		}
		msg.Points = append(msg.Points, &searchv1.LocatePoint{Id: req.GetId(), Point: req.GetPoint()})
	}
	return msg, nil
}

// setPerMessage sets the most points a message carries (--points-per-message).
func (p *pointReader) setPerMessage(n int) error {
	if n < 1 || n > maxPointsPerMessage {
		return fmt.Errorf("--points-per-message must be within [1, %d], got %d", maxPointsPerMessage, n)
	}
	p.perMessage = n
	return nil
}

// negotiated returns the messages to send on stream when the server's
// support for the bulk form is not known: the first point in a message of
// its own, then, once the server's headers have come with its answer, up
// to perMessage points per message if they name grpcapi.LocateBulkHeader
// (and no more than its value), one per message otherwise: a server from
// before the bulk form would answer a message of points "no point".
func (p *pointReader) negotiated(stream grpc.ClientStream) func() (*searchv1.LocateRequest, error) {
	first := true
	return func() (*searchv1.LocateRequest, error) {
		if first {
			first = false
			return p.next()
		}
		if stream != nil {
			md, err := stream.Header()
			stream = nil
			most := 0
			if v := md.Get(grpcapi.LocateBulkHeader); err == nil && len(v) > 0 {
				most, _ = strconv.Atoi(v[0])
			}
			p.perMessage = max(1, min(p.perMessage, most))
		}
		return p.nextMessage()
	}
}
