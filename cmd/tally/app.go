package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/tally-vote/tally/pkg/app"
)

// serve runs the HTTP API until ctx is cancelled, then drains in-flight
// requests with a fresh timeout.
func serve(ctx context.Context, a *app.App) error {
	srv, err := a.APIServer()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	return serveHTTP(ctx, a.Logger(), srv, ln)
}

// serveHTTP serves srv on ln until ctx is cancelled, then drains in-flight
// requests with a fresh timeout.
func serveHTTP(ctx context.Context, log *zap.Logger, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		log.Info("http listening", zap.String("addr", ln.Addr().String()))
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down http")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
