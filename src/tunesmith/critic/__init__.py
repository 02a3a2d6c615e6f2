"""The critic stage: a forest fitted on a model's own melodies against its training songs, by
which generation keeps the most song-like of a few candidates (see :mod:`tunesmith.critic.model`)."""

from tunesmith.critic.forest import Forest
from tunesmith.critic.model import EXTRA_KEY, Critic, CriticConfig, critic_of, fit_critic, training_songs

__all__ = ["EXTRA_KEY", "Critic", "CriticConfig", "Forest", "critic_of", "fit_critic", "training_songs"]
