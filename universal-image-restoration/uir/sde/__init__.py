"""IR-SDE: settings, schedules, marginals, posterior, and conversions between prediction targets."""
from uir.sde.irsde import IRSDE, interp, theta_schedule
from uir.sde.predictions import FIT_TARGETS, to_data, to_noise, velocity_from
from uir.sde.settings import SCHEDULES, IRSDESettings

__all__ = ["IRSDE", "IRSDESettings", "SCHEDULES", "interp", "theta_schedule", "FIT_TARGETS", "to_data", "to_noise",
           "velocity_from"]
