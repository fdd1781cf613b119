"""The request bodies of the seeds, verbatim: SigningHub's (000) and BoldSign's samples (001)."""

from __future__ import annotations

import json
from typing import Any

SIGNINGHUB_SAMPLE = """{
   "apply_to_all": true,
   "authentication": {
      "enabled": true,
      "password": {
         "enabled": true,
         "user_password": ""
      },
      "sms_otp": {
         "enabled": false,
         "mobile_number": "00445566778899"
      }
   },
   "access_duration": {
      "enabled": true,
      "duration_by_date": {
         "enabled": true,
         "duration": {
            "start_date_time": "2015-02-13T12:10:000Z",
            "end_date_time": "2015-02-28T12:10:000Z"
         }
      },
      "duration_by_days": {
         "enabled": false,
         "duration": {
            "total_days": 4
         }
      }
   }
}"""
"""shared/seeds/000: the request body of Update Workflow User Authentication."""

# shared/seeds/001: the curl bodies (`-d "..."`, shell quoting undone) and the JavaScript one.
BOLDSIGN_EMAIL_OTP = '{"authenticationType": "EmailOTP", "emailId": "alexgayle@cubeflakes.com"}'
BOLDSIGN_ACCESS_CODE = (
    '{"accessCode": "123456", "authenticationType": "AccessCode", "emailId": "alexgayle@cubeflakes.com"}'
)
BOLDSIGN_SMS_OTP = (
    '{"authenticationType": "SMSOTP", "emailId": "alexgayle@cubeflakes.com",'
    ' "phoneNumber": {"countryCode": "+1", "number": "2015666802"}}'
)
BOLDSIGN_EMAIL_OTP_WITH_ORDER = (
    '{"authenticationType": "EmailOTP", "emailId": "alexgayle@cubeflakes.com", "order": 2}'
)
BOLDSIGN_SAMPLES = {
    "email_otp": BOLDSIGN_EMAIL_OTP,
    "access_code": BOLDSIGN_ACCESS_CODE,
    "sms_otp": BOLDSIGN_SMS_OTP,
    "email_otp_with_order": BOLDSIGN_EMAIL_OTP_WITH_ORDER,
}
BOLDSIGN_SIGNER = "alexgayle@cubeflakes.com"


def body(text: str) -> dict[str, Any]:
    return json.loads(text)
