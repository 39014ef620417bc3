package main

import (
	"context"
	"errors"
	"fmt"
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
	srv := httpapi.NewServer(a.Cfg.HTTP, a.Cfg.HTTPAddr, router)
	errc := make(chan error, 1)
	go func() {
		a.Log.Info("http listening", zap.String("addr", a.Cfg.HTTPAddr))
		errc <- srv.ListenAndServe()
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	a.Log.Info("shutting down http")
	shutCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}
