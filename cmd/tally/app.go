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
	"github.com/tally-vote/tally/pkg/httpapi"
)

// serve runs the HTTP API until ctx is cancelled, then drains in-flight
// requests with a fresh timeout.
func serve(ctx context.Context, a *app.App) error {
	router, err := a.Router()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.Cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http server: %w", err)
	}
	return serveHTTP(ctx, a.Log, httpapi.NewServer(a.Cfg.HTTP, a.Cfg.HTTPAddr, router), ln)
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
