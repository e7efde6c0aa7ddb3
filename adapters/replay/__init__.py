"""Replay market data: 1-minute kline files → time-ordered mark-price updates and funding.

Front door of the package; see :mod:`adapters.replay._source` for the intrabar path and the
merge order, :mod:`adapters.replay._instruments` for where instrument rules come from.
"""

from adapters.replay._instruments import bundled_data_dir as bundled_data_dir
from adapters.replay._instruments import derive_instrument as derive_instrument
from adapters.replay._instruments import load_instruments_json as load_instruments_json
from adapters.replay._klines import Bar as Bar
from adapters.replay._klines import DecimalCache as DecimalCache
from adapters.replay._klines import ReplayDataError as ReplayDataError
from adapters.replay._klines import read_bars as read_bars
from adapters.replay._klines import read_funding as read_funding
from adapters.replay._source import INTRABAR_OFFSETS_MS as INTRABAR_OFFSETS_MS
from adapters.replay._source import FundingTick as FundingTick
from adapters.replay._source import KlineReplay as KlineReplay
from adapters.replay._source import MarkTick as MarkTick
from adapters.replay._source import ReplayStep as ReplayStep
from adapters.replay._source import datetime_to_ms as datetime_to_ms
from adapters.replay._source import intrabar_path as intrabar_path
from adapters.replay._source import ms_to_datetime as ms_to_datetime

__all__ = [
    "INTRABAR_OFFSETS_MS",
    "Bar",
    "DecimalCache",
    "FundingTick",
    "KlineReplay",
    "MarkTick",
    "ReplayDataError",
    "ReplayStep",
    "bundled_data_dir",
    "datetime_to_ms",
    "derive_instrument",
    "intrabar_path",
    "load_instruments_json",
    "ms_to_datetime",
    "read_bars",
    "read_funding",
]
