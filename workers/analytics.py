"""Account analytics tasks: the equity snapshot round, sent by beat every minute."""

import logging

from celery import shared_task

from app.account.service import snapshot_round
from core.tasks import SNAPSHOT_EQUITY

log = logging.getLogger(__name__)


@shared_task(name=SNAPSHOT_EQUITY)
def snapshot_equity() -> int:
    taken = snapshot_round()
    log.info("equity snapshots taken: %d", taken)
    return taken
