"""The simulation engine: one SimPy environment per run, its RNG streams, id counters and event log."""

from dcsim.engine.distributions import Distribution, make_distribution
from dcsim.engine.eventlog import EventLog
from dcsim.engine.simulation import Simulation

__all__ = ["Distribution", "EventLog", "Simulation", "make_distribution"]
