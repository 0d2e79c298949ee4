"""The pages the emails link to, in a real browser (Debian's chromium driven by Selenium) against the real stack."""

import re
import uuid
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from .pages import wait_for
from .stack import wait_until

PASSWORD = "a-long-pass-phrase-42"


def test_from_the_verification_email_to_a_plan_and_an_api_key(stack, browser):
    email = f"web-{uuid.uuid4().hex[:8]}@example.com"
    signed_up = stack.request("POST", "/api/account", key=None, client="192.0.2.10",
                              json={"email": email, "password": PASSWORD, "name": "Web"})
    assert signed_up.status_code == 201, signed_up.text
    wait_until(lambda: any(to == email for to, _, _ in stack.mailbox()), 60, "the verification email", stack)
    body = next(text for to, subject, text in stack.mailbox() if to == email)
    link = re.search(r"(http\S+/api/user/verify\?token=\S+)", body).group(1)
    assert link.startswith(stack.base_url)

    browser.get(link)
    assert wait_for(browser, "#verified").text == "Email address verified"
    browser.find_element(By.ID, "signin-link").click()

    wait_for(browser, "#id_email").send_keys(email)
    browser.find_element(By.ID, "id_password").send_keys("not-my-password")
    browser.find_element(By.ID, "signin").click()
    assert wait_for(browser, "#error").text == "Invalid email or password."
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.ID, "signin").click()

    assert wait_for(browser, "#plan").text == "none chosen yet"
    Select(browser.find_element(By.ID, "id_plan")).select_by_value("business")
    browser.find_element(By.ID, "choose-plan").click()
    assert wait_for(browser, "#message").text == "You chose the business plan. We have sent you an email about it."
    assert browser.find_element(By.ID, "plan").text == "business"

    browser.find_element(By.ID, "create-key").click()
    key = wait_for(browser, "#new-key").text.strip()
    assert key.startswith("gj_")
    stack.keys[email] = key
    account = stack.request("GET", "/api/account", key=email).json()
    assert (account["user"]["email"], account["account"]["plan"]) == (email, "business")
    job = stack.add("noop", {"from": "the page's key"}, key=email)
    assert stack.request("GET", f"/api/job/{job['id']}", key=email).json()["data"] == {"from": "the page's key"}

    browser.find_element(By.ID, "signout").click()
    wait_for(browser, "#id_email")
    assert Path(browser.current_url).name == "signin"
