"""Result types shared by functions and by the hardware units that compute the same results
(a card's counter sets give STATS's Stats)."""
from collections import namedtuple


class Stats(namedtuple("Stats", "count sum sum2 min max")):
    __slots__ = ()

    @property
    def mean(self):
        return self.sum / self.count if self.count else None

    @property
    def variance(self):
        """Population variance of the samples."""
        if not self.count:
            return None
        m = self.sum / self.count
        return max(0.0, self.sum2 / self.count - m * m)
