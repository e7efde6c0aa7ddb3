"""The actor runtime (mailboxes, ask, latest-value cells, supervision, timers) and the actors."""
