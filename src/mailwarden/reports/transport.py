"""How reports leave: through an SMTP relay (smtplib on a worker thread: a few messages a
day need no event-loop SMTP client), or into a directory (dry run)."""

from __future__ import annotations

import asyncio
import re
import smtplib
import ssl
from pathlib import Path
from typing import Protocol

__all__ = ["DirectoryTransport", "SMTPTransport", "SendError", "Transport"]


class SendError(Exception):
    """A report was not handed over. `permanent`: the relay refused it for good (5xx);
    `relay_down`: the relay could not be reached (nothing else should be tried now)."""

    def __init__(self, detail: str, *, permanent: bool = False, relay_down: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.permanent = permanent
        self.relay_down = relay_down


class Transport(Protocol):
    async def send(self, mail_from: str, rcpt: str, message: bytes, *, name: str = "") -> str:
        """Hand one message over; what the other side said. SendError if not."""
        ...


def _reply(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(words.split())}"[:300]


class SMTPTransport:
    """Sends through the relay at (host, port), with STARTTLS when asked."""

    def __init__(
        self, host: str, port: int, *, starttls: bool = False, helo: str = "", timeout: float = 60
    ) -> None:
        self.host = host
        self.port = port
        self.starttls = starttls
        self.helo = helo or None
        self.timeout = timeout

    async def send(self, mail_from: str, rcpt: str, message: bytes, *, name: str = "") -> str:
        return await asyncio.to_thread(self._send, mail_from, rcpt, message)

    def _send(self, mail_from: str, rcpt: str, message: bytes) -> str:
        try:
            with smtplib.SMTP(
                self.host, self.port, local_hostname=self.helo, timeout=self.timeout
            ) as smtp:
                smtp.ehlo()
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                smtp.sendmail(mail_from, [rcpt], message)
                code, text = smtp.noop()
                return _reply(code, text)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise SendError(_reply(code, text), permanent=code >= 500) from None
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            detail = _reply(exc.smtp_code, exc.smtp_error)
            raise SendError(detail, permanent=exc.smtp_code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise SendError(_reply(exc.smtp_code, exc.smtp_error), relay_down=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise SendError(f"relay {self.host}:{self.port}: {exc}", relay_down=True) from None


_UNSAFE = re.compile(r"[^A-Za-z0-9!._+@-]")


class DirectoryTransport:
    """Dry run: each message is written to `directory` (name.eml), nothing is sent."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def send(self, mail_from: str, rcpt: str, message: bytes, *, name: str = "") -> str:
        stem = _UNSAFE.sub("_", f"{name or 'report'}.{rcpt}")[:200]
        envelope = f"X-Mailwarden-Envelope: MAIL FROM:<{mail_from}> RCPT TO:<{rcpt}>\r\n"
        path = await self.keep(f"{stem}.eml", envelope.encode() + message)
        return f"written to {path}"

    async def keep(self, name: str, data: bytes) -> Path:
        """Write one file (a message, or the report file itself) into the directory."""
        path = self.directory / _UNSAFE.sub("_", name)[:240]

        def write() -> None:
            self.directory.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

        await asyncio.to_thread(write)
        return path
