"""Forms of the pages."""
from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts.lockout import is_locked, lockout_message


class LoginForm(AuthenticationForm):
    """The login form, telling a locked-out person so instead of 'wrong password'."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "Wrong user name or password.",
    }

    def clean(self):
        if is_locked(self.cleaned_data.get("username", "")):
            raise forms.ValidationError(lockout_message(), code="locked")
        return super().clean()
