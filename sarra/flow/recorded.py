"""What dd_watch's and dd_poll's sources share: a record of what they
posted, committed when a batch's posts are confirmed, and the unconfirmed
batch handed out again."""


class RecordedBatches:
    """``ack`` and ``rewind`` of a Source keeping ``state`` (with
    ``commit``), the batch handed out (``batch``) and what is to be handed
    out first (``ready``)."""
    state = None
    ready: list
    batch: list

    def ack(self, tags: list) -> None:
        """The batch is confirmed by the broker: make its record permanent."""
        if self.state is not None:
            self.state.commit()
        self.batch = []

    def rewind(self) -> None:
        """The batch was not confirmed: hand it out again (its record stays
        uncommitted until then)."""
        self.ready = self.batch + self.ready
        self.batch = []
