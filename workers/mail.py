"""Outgoing mail, on its own queue so a slow mail server never blocks the API or the engine.

Tasks carry only an outbox row id: Flower and the broker never see an address or a link.
"""

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from celery import shared_task
from flask import current_app

from app.auth.service import LINK_TTL, mark_sent, take_link_to_send, unsent_outbox_ids
from core.tasks import SEND_SIGN_IN_LINK, SWEEP_MAIL_OUTBOX

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 15


def _smtp_connection(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    if parts.scheme == "smtps":
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT_S)
    else:
        smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT_S)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls()
            smtp.ehlo()
    if parts.username:
        smtp.login(unquote(parts.username), unquote(parts.password or ""))
    return smtp


def sign_in_message(address: str, link: str) -> EmailMessage:
    minutes = int(LINK_TTL.total_seconds() // 60)
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = address
    message["Subject"] = "Your sign-in link"
    message.set_content(f"Sign in to your paper-trading account (valid {minutes} minutes, once):\n\n{link}\n")
    return message


def deliver(address: str, link: str) -> None:
    smtp_url = current_app.config["SMTP_URL"]
    if not smtp_url:
        log.info("sign-in link for %s: %s", address, link)
        return
    with _smtp_connection(smtp_url) as smtp:
        smtp.send_message(sign_in_message(address, link))


@shared_task(name=SEND_SIGN_IN_LINK, autoretry_for=(OSError, smtplib.SMTPException), retry_backoff=True, max_retries=5)
def send_sign_in_link(outbox_id: int) -> None:
    """Create the account (on sign-up) and the link, mail it, then delete the outbox row."""
    to_send = take_link_to_send(outbox_id)
    if to_send is None:
        return
    deliver(*to_send)
    mark_sent(outbox_id)


@shared_task(name=SWEEP_MAIL_OUTBOX)
def sweep_outbox() -> int:
    """Re-enqueue links whose task never ran (the broker was down when the API committed them)."""
    ids = unsent_outbox_ids(timedelta(seconds=current_app.config["MAIL_SWEEP_AFTER_S"]))
    for outbox_id in ids:
        send_sign_in_link.delay(outbox_id)
    if ids:
        log.warning("mail sweep re-enqueued %d sign-in links", len(ids))
    return len(ids)
