"""What happens to users and accounts, for apps that react (onboarding's emails) without accounts knowing them."""

from django.dispatch import Signal

# Each is sent once its write is done, inside the caller's transaction: a receiver that adds a
# job has it sent only if that transaction commits.
user_signed_up = Signal()  # user, account
email_verified = Signal()  # user
plan_selected = Signal()  # user (who chose), account
