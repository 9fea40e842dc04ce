"""The guest cannot widen modes or change owners after creation (issue 14, finding 2): an SMB2 SET_INFO carrying a
security descriptor (a DACL granting Everyone full control, an owner of Unix root) sent to winarm's real smbd by
smbprotocol, as Windows' "Security" tab would. With Samba's default NT ACL support that turned a 0664 file into
0677 and changed a file's owner; the host's stat must show neither. Needs root, as the share tests do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import smbclient
from smbclient._io import SMBFileTransaction, SMBRawIO
from smbprotocol.exceptions import SMBOSError, SMBResponseException
from smbprotocol.file_info import InfoType
from smbprotocol.open import (
    FilePipePrinterAccessMask,
    InfoAdditionalInformation,
    SMB2SetInfoRequest,
    SMB2SetInfoResponse,
)
from smbprotocol.security_descriptor import AccessAllowedAce, AclPacket, SDControl, SIDPacket, SMB2CreateSDBuffer

from tests.system.test_share import login, owner_and_mode, running, unc
from winarm.config.share import Share, ShareSettings

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: smbd gives files another owner only as root")

EVERYONE = "S-1-1-0"
UNIX_ROOT = "S-1-22-1-0"  # Samba's SID for the Unix user of uid 0
FULL_CONTROL = 0x001F01FF


def sid(text: str) -> SIDPacket:
    packet = SIDPacket()
    packet.from_string(text)
    return packet


def descriptor(owner: str | None) -> SMB2CreateSDBuffer:
    """A self-relative security descriptor: a DACL of one ACE (Everyone: full control), and ``owner`` if given."""
    ace = AccessAllowedAce()
    ace["mask"] = FULL_CONTROL
    ace["sid"] = sid(EVERYONE)
    dacl = AclPacket()
    dacl["aces"] = [ace]
    sd = SMB2CreateSDBuffer()
    sd["control"].set_flag(SDControl.SELF_RELATIVE)
    sd.set_dacl(dacl)
    if owner is not None:
        sd.set_owner(sid(owner))
    return sd


def set_security(path: str, port: int, *, owner: str | None) -> str:
    """Send SET_INFO (security: DACL, and OWNER when ``owner``) on ``path``; the server's answer: "ok" or its
    status as text (a refusal is fine: what counts is the host's stat afterwards)."""
    access = FilePipePrinterAccessMask.WRITE_DAC | FilePipePrinterAccessMask.READ_CONTROL
    if owner is not None:
        access |= FilePipePrinterAccessMask.WRITE_OWNER
    raw = SMBRawIO(path, mode="r", share_access="rwd", desired_access=access, port=port)
    info = InfoAdditionalInformation.DACL_SECURITY_INFORMATION
    if owner is not None:
        info |= InfoAdditionalInformation.OWNER_SECURTIY_INFORMATION  # (sic, smbprotocol)
    try:
        with SMBFileTransaction(raw) as transaction:
            request = SMB2SetInfoRequest()
            request["info_type"] = InfoType.SMB2_0_INFO_SECURITY
            request["additional_information"] = info
            request["file_id"] = raw.fd.file_id
            request["buffer"] = descriptor(owner)

            def receive(sent: object) -> SMB2SetInfoResponse:
                response = raw.fd.connection.receive(sent)
                answer = SMB2SetInfoResponse()
                answer.unpack(response["data"].get_value())
                return answer

            transaction.__add__((request, receive))  # queues the request; the transaction sends it on exit
    except (SMBResponseException, SMBOSError) as error:
        return f"refused {error}"
    return "ok"


def test_a_dacl_or_an_owner_set_by_the_guest_changes_nothing_on_the_host(run_base: Path, folder: Path) -> None:
    settings = ShareSettings(shares=(Share("Data", folder),), uid=4321, gid=4322, file_mode=0o664, dir_mode=0o755)
    with running(settings, run_base) as smbd:
        port = smbd.port
        login(port)
        smbclient.mkdir(unc(port, "dir"), port=port)
        with smbclient.open_file(unc(port, "file.txt"), "w", port=port) as handle:
            handle.write("the guest's")
        before = {name: owner_and_mode(folder / name) for name in ("file.txt", "dir")}
        answers = [set_security(unc(port, "file.txt"), port, owner=None),
                   set_security(unc(port, "dir"), port, owner=None),
                   set_security(unc(port, "file.txt"), port, owner=UNIX_ROOT)]
    assert before == {"file.txt": (4321, 4322, 0o664), "dir": (4321, 4322, 0o755)}
    after = {name: owner_and_mode(folder / name) for name in ("file.txt", "dir")}
    assert after == before, answers
