"""IR-SDE: schedules, marginals, posterior, and conversions between prediction targets."""
from uir.sde.irsde import IRSDE, SCHEDULES, interp, theta_schedule
from uir.sde.predictions import FIT_TARGETS, to_data, to_noise, velocity_from

__all__ = ["IRSDE", "SCHEDULES", "interp", "theta_schedule", "FIT_TARGETS", "to_data", "to_noise", "velocity_from"]
