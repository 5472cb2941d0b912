"""Outgoing mail, on its own queue so a slow mail server never blocks the API or the engine."""
import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import current_app

from celery_app import celery

log = logging.getLogger(__name__)
SMTP_TIMEOUT_S = 15


def _smtp_connection(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    if parts.scheme == "smtps":
        smtp = smtplib.SMTP_SSL(parts.hostname, parts.port or 465, timeout=SMTP_TIMEOUT_S)
    else:
        smtp = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=SMTP_TIMEOUT_S)
        smtp.ehlo()
        if smtp.has_extn("starttls"):
            smtp.starttls()
            smtp.ehlo()
    if parts.username:
        smtp.login(unquote(parts.username), unquote(parts.password or ""))
    return smtp


@celery.task(
    name="mail.send_sign_in_link",
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=True,
    max_retries=5,
)
def send_sign_in_link(email: str, link: str) -> None:
    smtp_url = current_app.config["SMTP_URL"]
    if not smtp_url:
        log.info("sign-in link for %s: %s", email, link)
        return
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = email
    message["Subject"] = "Your sign-in link"
    message.set_content(f"Sign in to your paper-trading account (valid 15 minutes, once):\n\n{link}\n")
    with _smtp_connection(smtp_url) as smtp:
        smtp.send_message(message)
