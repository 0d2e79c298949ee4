"""Helpers for the browser tests: wait for what a page shows, log in to the admin."""

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait


def wait_for(driver: WebDriver, css: str, timeout: float = 15) -> WebElement:
    """Wait until an element matching `css` is visible; return it."""
    visible = expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    return WebDriverWait(driver, timeout).until(visible)


def admin_log_in(driver: WebDriver, base_url: str, username: str, password: str) -> None:
    """Log in through the admin's own login form, and wait for its index."""
    driver.get(f"{base_url}/admin/login/")
    wait_for(driver, "#id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()
    assert wait_for(driver, "#content h1").text == "Site administration"
