"""Seed 004's AssureSign AuthenticateUser samples, verbatim (their trailing spaces included)."""

SEED_REQUEST = (
    b'<?xml version="1.0" encoding="utf-8"?> \n'
    b'<AuthenticateUser xmlns="https://www.assuresign.net/Services/DocumentNOW/Users"> \n'
    b'    <AuthenticateUserRequest UserName="jdoe@example.com" Password="Password" /> \n'
    b"</AuthenticateUser>"
)
SEED_RESPONSE = (
    b'<?xml version="1.0" encoding="utf-8"?> \n'
    b'<AuthenticateUserResponse xmlns="https://www.assuresign.net/Services/DocumentNOW/Users">\n'
    b'    <AuthenticateUserResult Success="true" AuthenticationToken="[authentication token]" UserName="jdoe@example.com" FirstName="John" LastName="Doe"> \n'
    b"        <Accounts> \n"
    b'            <UserAccount Name="Example, Inc." ContextIdentifier="821ae27f-027c-4f21-a2e5-1667fc9b650a" IsPrimary="true" /> \n'
    b"        </Accounts> \n"
    b"    </AuthenticateUserResult> \n"
    b"</AuthenticateUserResponse>"
)
SEED_ACTION = "https://www.assuresign.net/Services/DocumentNOW/Users/IUserService/AuthenticateUser"
