"""API users' tokens and the authentication used by the API and by listeners."""
