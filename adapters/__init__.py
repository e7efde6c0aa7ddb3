"""Implementations of the ports: venues (bybit, binance, paper), postgres journal, signal sources, http."""
