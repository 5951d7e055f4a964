#!/usr/bin/env python3
"""Generate the small, hand-written sample datasets that live under ``data/``.

Usage::

    python data/make_samples.py

Writes (relative to this file's directory):

* ``general/alpaca_general.json``    - Alpaca records, JSON list (indent=2)
* ``tasks/summarize_sharegpt.jsonl`` - ShareGPT summarization conversations
* ``tasks/zh_qa_messages.jsonl``     - Chinese Q&A in OpenAI ``messages`` format

All text below was written for this project. Each file deliberately contains a
few defects (duplicates, empty answers, placeholders, broken JSON, wrong
language, PII, ...) so the curation pipeline has something to clean; the exact
counts are documented in ``data/README.md``.

The output is deterministic: every random choice comes from a
``random.Random`` seeded with a fixed value, and running the script twice
produces byte-identical files.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
SEED = 7


# =============================================================================
# 1. General-purpose Alpaca records (English)
# =============================================================================

# --- Hand-written records without input --------------------------------------
ALPACA_NO_INPUT = [
    (
        "Give three tips for staying healthy.",
        "1. Eat a balanced diet with plenty of vegetables, fruit, whole grains, and lean protein.\n"
        "2. Get regular physical activity; aim for at least 150 minutes of moderate exercise per week.\n"
        "3. Sleep seven to nine hours a night and keep a consistent bedtime.",
    ),
    (
        "Explain why the sky is blue.",
        "The sky looks blue because of a process called Rayleigh scattering. Sunlight contains all "
        "colors of visible light, and as it passes through the atmosphere it collides with gas "
        "molecules that are much smaller than the light's wavelength. These molecules scatter shorter "
        "wavelengths, such as blue, much more strongly than longer wavelengths like red. The scattered "
        "blue light reaches our eyes from every direction, so the whole sky appears blue. Violet light "
        "is scattered even more, but our eyes are less sensitive to it and some of it is absorbed high "
        "in the atmosphere.",
    ),
    (
        "What is the difference between weather and climate?",
        "Weather describes short-term atmospheric conditions in a particular place, such as today's "
        "temperature, rain, or wind. Climate is the average pattern of weather in a region over a long "
        "period, usually 30 years or more. In short, weather is what you get on a given day, while "
        "climate is what you can expect over the years.",
    ),
    (
        "Describe how to boil an egg so that the yolk is fully set.",
        "1. Place the eggs in a saucepan in a single layer and cover them with cold water by about 2-3 cm.\n"
        "2. Bring the water to a boil over medium-high heat.\n"
        "3. As soon as it boils, turn off the heat, cover the pan, and let the eggs sit for 10-12 minutes.\n"
        "4. Move the eggs to a bowl of ice water for at least 5 minutes to stop the cooking.\n"
        "5. Peel and serve. The yolk will be fully set but not chalky.",
    ),
    (
        "List five common renewable energy sources.",
        "1. Solar power\n2. Wind power\n3. Hydroelectric power\n4. Geothermal energy\n5. Biomass energy",
    ),
    (
        "Explain what a budget is and why it is useful.",
        "A budget is a plan that shows how much money you expect to earn and how you intend to spend or "
        "save it over a period of time, such as a month. It is useful because it shows where your money "
        "goes, helps you avoid spending more than you earn, makes room for savings and emergencies, and "
        "lets you work steadily toward goals like paying off debt or buying a home.",
    ),
    (
        "How do vaccines help the body fight disease?",
        "Vaccines train the immune system to recognize a germ without causing the disease. They contain "
        "a harmless piece of a virus or bacterium, a weakened or inactivated form of it, or instructions "
        "for making one of its proteins. The immune system responds by producing antibodies and memory "
        "cells. If the person is later exposed to the real germ, the immune system recognizes it quickly "
        "and can fight it off before it causes serious illness.",
    ),
    (
        "Write a haiku about autumn leaves.",
        "Crimson leaves let go,\ndrifting on the cooling wind,\nthe oak stands lighter.",
    ),
    (
        "Suggest a name for a small coffee shop near a university campus, and explain your choice.",
        "Name: \"The Study Break\"\n\nThe name speaks directly to students, who are likely to be the "
        "shop's main customers. It suggests a relaxing pause between classes or study sessions, and it "
        "is short, friendly, and easy to remember.",
    ),
    (
        "Explain the difference between \"affect\" and \"effect\".",
        "\"Affect\" is usually a verb meaning to influence something: \"The weather can affect your "
        "mood.\" \"Effect\" is usually a noun meaning a result: \"The new policy had a positive effect on "
        "sales.\" A simple memory trick is that Affect is the Action and Effect is the End result. Less "
        "commonly, \"effect\" can be a verb meaning to bring about (\"to effect change\"), and \"affect\" "
        "can be a noun in psychology referring to a person's visible emotional state.",
    ),
    (
        "What are the main causes of inflation?",
        "1. Demand-pull inflation: total demand for goods and services grows faster than the economy can "
        "produce them, so prices rise.\n"
        "2. Cost-push inflation: production costs such as wages, energy, or raw materials increase, and "
        "businesses pass those costs on to consumers.\n"
        "3. Growth in the money supply: if the amount of money grows much faster than output, each unit "
        "of money buys less.\n"
        "4. Expectations: if people and businesses expect prices to rise, they raise wages and prices in "
        "advance, which can make inflation self-reinforcing.",
    ),
    (
        "Give step-by-step instructions for changing a flat bicycle tire.",
        "1. Shift to the smallest rear cog (for a rear wheel), release the brake if needed, and remove the wheel.\n"
        "2. Let out any remaining air, then use tire levers to pry one side of the tire off the rim.\n"
        "3. Pull out the inner tube.\n"
        "4. Carefully run your fingers around the inside of the tire and remove whatever caused the "
        "puncture, such as a thorn or a piece of glass.\n"
        "5. Slightly inflate the new or patched tube so it holds its shape, push the valve through the "
        "rim, and tuck the tube into the tire.\n"
        "6. Work the tire bead back onto the rim with your thumbs, starting at the valve and taking care "
        "not to pinch the tube.\n"
        "7. Inflate to the pressure printed on the tire's sidewall, check that the tire is seated "
        "evenly, and reinstall the wheel.",
    ),
    (
        "Explain what photosynthesis is in simple terms.",
        "Photosynthesis is how plants make their own food. Using energy from sunlight, a plant takes in "
        "carbon dioxide from the air through its leaves and water from the soil through its roots. In "
        "its green parts, which contain chlorophyll, it turns these ingredients into sugar (glucose) for "
        "energy and growth. As a by-product it releases oxygen, which is the oxygen we and other animals "
        "breathe.",
    ),
    (
        "List four ways to reduce household energy use.",
        "1. Switch to LED light bulbs, which use far less electricity than incandescent bulbs.\n"
        "2. Turn off electronics when they are not in use, or plug them into a power strip to cut standby power.\n"
        "3. Adjust the thermostat by a degree or two and seal drafts around windows and doors.\n"
        "4. Run the dishwasher and washing machine only with full loads, and wash clothes in cold water when possible.",
    ),
    (
        "What does HTTP stand for, and what is it used for?",
        "HTTP stands for Hypertext Transfer Protocol. It is the set of rules that web browsers and "
        "servers use to communicate. When you visit a website, your browser sends an HTTP request to the "
        "server, and the server sends back an HTTP response containing the page, image, or other data. "
        "HTTPS is the secure version, which encrypts the exchange so that others cannot easily read or "
        "alter it.",
    ),
    (
        "Explain the concept of compound interest with a short example.",
        "Compound interest is interest calculated on both the original amount (the principal) and the "
        "interest that has already been added to it; in other words, you earn interest on your interest.\n\n"
        "Example: you deposit $1,000 at 5% interest, compounded once a year.\n"
        "- After year 1: $1,000 × 1.05 = $1,050.00\n"
        "- After year 2: $1,050 × 1.05 = $1,102.50\n\n"
        "With simple interest you would have $1,100 after two years; the extra $2.50 comes from earning "
        "interest on the first year's interest. Over long periods this effect becomes large.",
    ),
    (
        "Describe the water cycle in four steps.",
        "1. Evaporation: the Sun heats water in oceans, lakes, and rivers, turning it into water vapor that rises into the air.\n"
        "2. Condensation: as the vapor rises and cools, it condenses into tiny droplets that form clouds.\n"
        "3. Precipitation: when the droplets combine and grow heavy, they fall as rain, snow, sleet, or hail.\n"
        "4. Collection: the water gathers in oceans, lakes, rivers, and underground aquifers, and the cycle begins again.",
    ),
    (
        "Write a short, polite email declining a meeting invitation.",
        "Subject: Re: Meeting Invitation\n\nHi Jordan,\n\nThank you for the invitation to Thursday's "
        "meeting. Unfortunately, I have a prior commitment at that time and won't be able to attend. "
        "Please feel free to send me any notes or action items afterward, and I'll be happy to follow "
        "up.\n\nBest regards,\nAlex",
    ),
    (
        "What is the purpose of a cover letter?",
        "A cover letter introduces you to a potential employer and explains why you want a specific job "
        "and why you would be a good fit. While a résumé lists your experience and skills, the cover "
        "letter connects them to the position, highlights your most relevant achievements, and shows "
        "your communication style. A strong cover letter can persuade the employer to read your résumé "
        "closely and invite you to an interview.",
    ),
    (
        "Name three famous works by William Shakespeare.",
        "1. Hamlet\n2. Romeo and Juliet\n3. Macbeth",
    ),
    (
        "Explain what a prime number is and give the first five primes.",
        "A prime number is a whole number greater than 1 that has exactly two divisors: 1 and itself. "
        "For example, 7 is prime because only 1 and 7 divide it evenly, while 8 is not prime because it "
        "is also divisible by 2 and 4. The first five prime numbers are 2, 3, 5, 7, and 11.",
    ),
    (
        "How can I improve my focus while studying?",
        "- Put your phone in another room or use an app that blocks distracting websites.\n"
        "- Study in short, focused blocks (for example, 25 minutes) followed by 5-minute breaks.\n"
        "- Set a specific goal for each session, such as finishing one chapter or ten practice problems.\n"
        "- Keep your study space tidy and use the same place regularly so your brain links it with work.\n"
        "- Get enough sleep, drink water, and take short walks to keep your energy up.",
    ),
    (
        "Explain the difference between a virus and a bacterium.",
        "Bacteria are single-celled living organisms that can grow and reproduce on their own. Many are "
        "harmless or even helpful, like those in our gut, while some cause diseases such as strep "
        "throat. Viruses are much smaller and are not cells at all: they are genetic material wrapped in "
        "a protein coat, and they can reproduce only by infecting a host cell and using its machinery. "
        "Because of these differences, antibiotics can treat many bacterial infections but do not work "
        "against viruses.",
    ),
    (
        "Give two arguments for and two against school uniforms.",
        "For school uniforms:\n"
        "1. They reduce visible differences in family income, which can lessen peer pressure and teasing about clothes.\n"
        "2. They simplify mornings for students and parents and can lower clothing costs over time.\n\n"
        "Against school uniforms:\n"
        "1. They limit students' ability to express their individuality.\n"
        "2. The upfront cost of buying specific uniform items can be a burden for some families.",
    ),
    (
        "What is the Pythagorean theorem?",
        "The Pythagorean theorem states that in a right triangle, the square of the hypotenuse (the side "
        "opposite the right angle) equals the sum of the squares of the other two sides: a² + b² = c², "
        "where c is the hypotenuse. For example, if the two shorter sides are 3 and 4, then "
        "c² = 9 + 16 = 25, so the hypotenuse is 5.",
    ),
    (
        "Describe a simple method for making cold brew coffee at home.",
        "1. Coarsely grind about 85 g (roughly 1 cup) of coffee beans.\n"
        "2. Stir the grounds into 1 liter (about 4 cups) of cold or room-temperature water in a jar or pitcher.\n"
        "3. Cover and let it steep for 12 to 18 hours, in the refrigerator or on the counter.\n"
        "4. Strain through a fine sieve lined with a paper filter or cheesecloth.\n"
        "5. The result is a concentrate: dilute it with water or milk to taste and serve over ice. It "
        "keeps in the refrigerator for about a week.",
    ),
    (
        "Explain what machine learning is to a ten-year-old.",
        "Machine learning is a way of teaching computers by showing them lots of examples instead of "
        "giving them step-by-step rules. Say you want a computer to recognize cats. Instead of "
        "describing whiskers and pointy ears, you show it thousands of pictures labeled \"cat\" or "
        "\"not cat.\" Over time, the computer notices patterns and gets better at guessing on its own, a "
        "bit like how you learned to recognize animals by seeing lots of them.",
    ),
    (
        "List the planets of the solar system in order from the Sun.",
        "1. Mercury\n2. Venus\n3. Earth\n4. Mars\n5. Jupiter\n6. Saturn\n7. Uranus\n8. Neptune",
    ),
    (
        "What is the boiling point of water at sea level in Celsius and Fahrenheit?",
        "At sea level, water boils at 100 degrees Celsius, which is 212 degrees Fahrenheit.",
    ),
    (
        "Write a motivational sentence for someone starting a new job.",
        "Every expert was once a beginner, so be patient with yourself, stay curious, and remember that "
        "they chose you for a reason.",
    ),
    (
        "Explain why we have seasons on Earth.",
        "Earth has seasons because its axis is tilted by about 23.5 degrees relative to its orbit around "
        "the Sun. As Earth orbits, the Northern and Southern Hemispheres take turns leaning toward the "
        "Sun. The hemisphere tilted toward the Sun gets more direct sunlight and longer days, which "
        "brings summer, while the hemisphere tilted away gets weaker sunlight and shorter days, which "
        "brings winter. Seasons are not caused by changes in Earth's distance from the Sun; Earth is "
        "actually closest to the Sun in early January, during the Northern Hemisphere's winter.",
    ),
    (
        "How do I write a good thesis statement?",
        "1. Make a clear, specific claim rather than naming a topic. \"Social media affects teenagers\" "
        "is vague; \"Daily social media use harms teenagers' sleep quality\" is specific.\n"
        "2. Make it arguable, so that a reasonable person could disagree.\n"
        "3. Keep it to one or two sentences and place it near the end of your introduction.\n"
        "4. Preview your main points if that helps guide the reader.\n"
        "5. Revise it as you write, so that it matches the evidence you actually present.",
    ),
    (
        "What are the three states of matter most commonly encountered in daily life?",
        "The three most common states of matter in everyday life are solid, liquid, and gas. Ice, "
        "liquid water, and steam are a familiar example of one substance in all three states.",
    ),
    (
        "Explain what a password manager does and why it is useful.",
        "A password manager is an app that stores your passwords in an encrypted vault protected by one "
        "strong master password. It can generate long, random passwords for each website and fill them "
        "in automatically when you log in. This lets you use a different strong password for every "
        "account without memorizing them all, which greatly limits the damage if one website is "
        "breached.",
    ),
    (
        "Give three ideas for a rainy-day activity with young children.",
        "1. Build a blanket fort from chairs, cushions, and sheets, then read books inside it with a flashlight.\n"
        "2. Set up an indoor scavenger hunt with picture clues for objects around the house.\n"
        "3. Bake something simple together, such as muffins, and let the children decorate them.",
    ),
    (
        "Explain the role of the mitochondria in a cell.",
        "Mitochondria are often called the powerhouses of the cell. They break down nutrients such as "
        "glucose and fatty acids, using oxygen, to produce ATP (adenosine triphosphate), the molecule "
        "cells use as their main energy currency. This process is called cellular respiration. "
        "Mitochondria also help regulate cell growth and cell death, and they carry their own small set "
        "of DNA.",
    ),
    (
        "Describe the main difference between a democracy and a monarchy.",
        "In a democracy, political power ultimately comes from the people, who choose their leaders in "
        "regular elections. In a monarchy, a king or queen is head of state, usually for life, and the "
        "position is normally inherited. The two can overlap: in a constitutional monarchy such as the "
        "United Kingdom or Japan, the monarch's role is mostly ceremonial and elected officials govern, "
        "so the country is still a democracy. In an absolute monarchy, by contrast, the monarch holds "
        "real political power without being elected.",
    ),
    (
        "What is the difference between a simile and a metaphor? Give an example of each.",
        "Both compare two different things, but a simile makes the comparison with \"like\" or \"as,\" "
        "while a metaphor states it directly.\n\n"
        "Simile: \"Her smile was as bright as the sun.\"\n"
        "Metaphor: \"Her smile was the sun on a gray day.\"",
    ),
    (
        "Create a short packing list for a weekend camping trip.",
        "- Tent, stakes, and ground sheet\n"
        "- Sleeping bag and sleeping pad\n"
        "- Headlamp or flashlight with spare batteries\n"
        "- Camp stove, fuel, lighter, and a small pot\n"
        "- Easy meals, snacks, and plenty of water or a water filter\n"
        "- Layers for the weather, a rain jacket, and extra socks\n"
        "- First-aid kit, sunscreen, and insect repellent\n"
        "- Map, phone, and a portable charger\n"
        "- Trash bags to pack out all waste",
    ),
    (
        "Explain what GDP measures.",
        "Gross domestic product (GDP) measures the total market value of all final goods and services "
        "produced within a country's borders during a period, usually a quarter or a year. It is widely "
        "used as an indicator of the size and health of an economy, and changes in real GDP, which is "
        "adjusted for inflation, show whether the economy is growing or shrinking. GDP does not capture "
        "things like income inequality, unpaid household work, or environmental quality.",
    ),
    (
        "Why is it important to back up your computer files?",
        "Backups protect you from losing important data. Drives can fail without warning, laptops can be "
        "lost or stolen, and ransomware or an accidental deletion can wipe out documents and photos. "
        "With a recent backup, on an external drive, in the cloud, or ideally both, you can restore your "
        "files quickly instead of losing years of work or memories.",
    ),
    (
        "Write a two-sentence horror story.",
        "The baby monitor crackled to life with a soft voice humming a lullaby. I stood frozen in the "
        "hallway, because I was the only one home.",
    ),
    (
        "Explain how a refrigerator keeps food cold.",
        "A refrigerator keeps food cold by moving heat from the inside to the outside. It pumps a fluid "
        "called a refrigerant through a closed loop of pipes. Inside the fridge, the refrigerant "
        "evaporates into a gas and absorbs heat from the food compartment. A compressor then squeezes "
        "the gas, which raises its temperature, and it flows through coils on the back or bottom of the "
        "fridge, where it releases that heat into the room and condenses back into a liquid. The cycle "
        "repeats continuously.",
    ),
    (
        "What should you do if you burn your finger on a hot pan?",
        "For a minor burn:\n"
        "1. Hold it under cool (not ice-cold) running water for about 10 to 20 minutes.\n"
        "2. Remove rings or anything tight near the area before it swells.\n"
        "3. Cover it loosely with a clean, non-stick dressing or cling film.\n"
        "4. Take an over-the-counter pain reliever if needed.\n\n"
        "Do not put ice, butter, or toothpaste on the burn, and do not pop any blisters. Get medical "
        "help if the burn is larger than your palm, looks white or charred, or is on the face, hands, "
        "or a major joint.",
    ),
    (
        "Describe three benefits of learning a second language.",
        "1. Career opportunities: many employers value staff who can work in more than one language.\n"
        "2. Mental exercise: learning a language trains memory, attention, and problem-solving.\n"
        "3. Cultural understanding: it makes travel richer and helps you connect with people from different backgrounds.",
    ),
    (
        "Explain the difference between RAM and storage in a computer.",
        "RAM (random-access memory) is the computer's short-term working memory. It holds the programs "
        "and data you are actively using so the processor can reach them quickly, and it is cleared when "
        "the computer turns off. Storage, such as a solid-state drive or hard disk, is long-term memory: "
        "it keeps your files, applications, and operating system even without power. RAM is much faster "
        "but smaller; storage is slower but holds far more.",
    ),
    (
        "Give a short definition of \"opportunity cost\" with an example.",
        "Opportunity cost is the value of the next-best alternative you give up when you make a choice. "
        "For example, if you work an extra Saturday shift that pays $120 instead of going to a concert, "
        "the opportunity cost of working is the concert; the opportunity cost of the concert would have "
        "been the $120 you didn't earn.",
    ),
    (
        "How many minutes are there in a week? Show your calculation.",
        "A day has 24 hours and an hour has 60 minutes, so a day has 24 × 60 = 1,440 minutes. A week has "
        "7 days, so it has 7 × 1,440 = 10,080 minutes.",
    ),
    (
        "Suggest three healthy breakfast options that take less than ten minutes to prepare.",
        "1. Greek yogurt topped with berries and a spoonful of nuts or seeds.\n"
        "2. Whole-grain toast with mashed avocado and a sliced hard-boiled egg.\n"
        "3. Overnight oats made the evening before with milk, chia seeds, and sliced banana.",
    ),
    (
        "Explain what a leap year is and why we have them.",
        "A leap year has 366 days instead of 365, with the extra day added as February 29. We need leap "
        "years because Earth takes about 365.2422 days to orbit the Sun; without an extra day roughly "
        "every four years, the calendar would slowly drift away from the seasons. In the Gregorian "
        "calendar, a year is a leap year if it is divisible by 4, except that years divisible by 100 "
        "are leap years only if they are also divisible by 400. So 2000 was a leap year, but 1900 was "
        "not.",
    ),
    (
        "List three tips for giving a good presentation.",
        "1. Know your audience and focus on the two or three key messages they most need to hear.\n"
        "2. Keep slides simple, with few words and clear visuals, and don't read from them.\n"
        "3. Rehearse out loud several times and time yourself, so you can speak naturally and confidently.",
    ),
    (
        "What is the difference between \"its\" and \"it's\"?",
        "\"It's\" is a contraction of \"it is\" or \"it has\": \"It's raining\" or \"It's been a long "
        "day.\" \"Its\" (no apostrophe) is the possessive form of \"it\": \"The dog wagged its tail.\" A "
        "quick test: if you can replace the word with \"it is\" or \"it has,\" write \"it's\"; otherwise "
        "write \"its.\"",
    ),
]

# --- Hand-written records with input -----------------------------------------
ALPACA_WITH_INPUT = [
    (
        "Rewrite the following sentence in the passive voice.",
        "The committee approved the new budget on Friday.",
        "The new budget was approved by the committee on Friday.",
    ),
    (
        "Correct the grammar and spelling in the following sentence.",
        "Their going to the libary tomorow to return there books.",
        "They're going to the library tomorrow to return their books.",
    ),
    (
        "Summarize the following text in one sentence.",
        "Many companies adopted remote work during the pandemic and discovered that employees could stay "
        "productive outside the office. As a result, a growing number of businesses now offer flexible "
        "arrangements that let staff split their time between home and the office. Supporters say this "
        "improves work-life balance, while critics worry about weaker team communication.",
        "After finding that remote work can be productive, many companies now offer hybrid arrangements, "
        "which supporters praise for work-life balance and critics fear may weaken team communication.",
    ),
    (
        "Translate the following sentence into Spanish.",
        "Where is the nearest train station?",
        "¿Dónde está la estación de tren más cercana?",
    ),
    (
        "Extract all the dates mentioned in the text.",
        "The contract was signed on March 3, 2021, renewed on 15 January 2022, and expires at the end "
        "of June 2024.",
        "- March 3, 2021\n- 15 January 2022\n- The end of June 2024",
    ),
    (
        "Make the following sentence more formal.",
        "Hey, can you send me that report asap?",
        "Could you please send me the report at your earliest convenience?",
    ),
    (
        "Identify the main verb in the sentence.",
        "The children quickly ran across the muddy field.",
        "The main verb is \"ran.\"",
    ),
    (
        "Convert the following list into a single sentence.",
        "apples\nbananas\ncherries\ngrapes",
        "The list includes apples, bananas, cherries, and grapes.",
    ),
    (
        "Classify the following email as spam or not spam.",
        "Congratulations! You have been selected to receive a $1,000 gift card. Click here to claim your "
        "prize within 24 hours.",
        "Spam. It promises an unexpected prize, creates false urgency, and asks the reader to click a link.",
    ),
    (
        "Classify the following email as spam or not spam.",
        "Hi Sam, the team meeting has moved to 3 pm on Thursday in Room 204. Let me know if that time "
        "doesn't work for you.",
        "Not spam. It is a routine message from a colleague about a meeting change and contains no "
        "suspicious links or requests.",
    ),
    (
        "Find the odd one out and explain why.",
        "carrot, potato, apple, onion",
        "Apple is the odd one out: it is a fruit, while carrot, potato, and onion are vegetables.",
    ),
    (
        "Rewrite this paragraph so that a young child can understand it.",
        "Volcanoes form when molten rock, called magma, rises from deep within the Earth and collects "
        "beneath the surface. When pressure builds up, the magma can force its way through weak spots "
        "in the crust and erupt as lava, ash, and gas.",
        "Deep under the ground it is so hot that rock melts into a thick, gooey liquid called magma. "
        "Sometimes the magma pushes up through cracks in the ground, like toothpaste squeezed out of a "
        "tube. When it bursts out, that's an eruption, and the hot, glowing rock that flows out is "
        "called lava. The mountain that builds up around the opening is a volcano!",
    ),
    (
        "Give a title to the following short story.",
        "Every morning, the old fisherman shared his breakfast with a one-eyed gull. When a storm kept "
        "him ashore for a week, he worried the bird had forgotten him. On the first calm day he rowed "
        "out at dawn, and there, waiting on the bow post, was the gull.",
        "The Gull Who Waited",
    ),
    (
        "Shorten the following sentence without changing its meaning.",
        "In spite of the fact that it was raining heavily, we made the decision to go ahead with the picnic.",
        "Despite the heavy rain, we decided to go ahead with the picnic.",
    ),
    (
        "Identify the tone of the following message.",
        "I've asked three times for a refund and nobody has replied. This is completely unacceptable.",
        "The tone is frustrated and angry. The writer stresses repeated unanswered requests and calls "
        "the situation \"completely unacceptable.\"",
    ),
    (
        "Turn the following notes into a complete sentence.",
        "meeting - Tues 10am - discuss Q3 budget - bring laptops",
        "The meeting is on Tuesday at 10 a.m. to discuss the Q3 budget, so please bring your laptops.",
    ),
    (
        "Calculate the total cost of the items.",
        "3 notebooks at $2.50 each, 2 pens at $1.20 each, 1 backpack at $24.99",
        "Notebooks: 3 × $2.50 = $7.50\nPens: 2 × $1.20 = $2.40\nBackpack: 1 × $24.99 = $24.99\n\n"
        "Total: $7.50 + $2.40 + $24.99 = $34.89",
    ),
    (
        "Rewrite the sentence using a more vivid verb.",
        "The dog went across the yard.",
        "The dog bounded across the yard.",
    ),
    (
        "Determine whether the statement is true or false, and explain.",
        "The Great Wall of China is visible to the naked eye from the Moon.",
        "False. This is a popular myth. From the Moon, about 384,000 kilometers away, no individual "
        "human-made structure can be seen with the naked eye. The wall is very long but only a few "
        "meters wide and similar in color to the land around it; even from low Earth orbit it is very "
        "hard to spot without aid.",
    ),
    (
        "Write a product description based on these features.",
        "stainless steel water bottle; 750 ml; keeps drinks cold 24 hours; leak-proof lid",
        "Stay refreshed wherever the day takes you with this 750 ml stainless steel water bottle. It "
        "keeps your drinks cold for up to 24 hours, and the leak-proof lid means you can toss it in your "
        "bag without worry. Durable and reusable, it's the perfect companion for the gym, the office, or "
        "the trail.",
    ),
    (
        "Generate three questions a reader might ask after reading this headline.",
        "City Council Votes to Close Main Street to Cars on Weekends",
        "1. Which hours and which section of Main Street will be closed to cars?\n"
        "2. When will the weekend closure take effect?\n"
        "3. How will the change affect local businesses, deliveries, and parking?",
    ),
    (
        "Identify the logical fallacy in the argument.",
        "Everyone I know loves this movie, so it must be the best movie of the year.",
        "This is an appeal to popularity (the bandwagon fallacy). The argument assumes the movie is the "
        "best simply because many people the speaker knows like it. Popularity, especially within a "
        "small personal circle, does not prove quality; it is also a hasty generalization from a "
        "limited sample.",
    ),
    (
        "Convert the following time from 24-hour format to 12-hour format.",
        "18:45",
        "6:45 PM",
    ),
    (
        "Rewrite the following sentence in the active voice.",
        "The window was broken by a stray baseball.",
        "A stray baseball broke the window.",
    ),
    (
        "Explain the meaning of the idiom.",
        "to bite off more than you can chew",
        "To \"bite off more than you can chew\" means to take on a task or responsibility that is too big "
        "or difficult for you to handle. For example: \"By agreeing to organize the whole conference "
        "alone, she bit off more than she could chew.\"",
    ),
    (
        "Put the following steps in the correct order.",
        "Rinse the dishes; Scrape food scraps into the bin; Dry the dishes; Wash the dishes in soapy water",
        "1. Scrape food scraps into the bin.\n2. Wash the dishes in soapy water.\n3. Rinse the dishes.\n"
        "4. Dry the dishes.",
    ),
    (
        "Count the number of words in the sentence.",
        "The quick brown fox jumps over the lazy dog.",
        "The sentence contains 9 words: The, quick, brown, fox, jumps, over, the, lazy, dog.",
    ),
    (
        "Suggest a better subject line for this email.",
        "Subject: stuff\n\nHi all, attached are the slides for Monday's client presentation. Please "
        "review them and send comments by Friday noon.",
        "Review needed: slides for Monday's client presentation (comments due Friday noon)",
    ),
]

# --- Sentiment classification (with input) -----------------------------------
SENTIMENT_INSTRUCTIONS = [
    "Classify the sentiment of this review as positive, negative, or neutral.",
    "Is the following review positive, negative, or neutral?",
    "Determine the sentiment of the customer review below.",
]
SENTIMENT_REVIEWS = [
    (
        "The battery easily lasts two days and the screen is gorgeous. Best phone I've owned.",
        "Positive. The reviewer praises the battery life and the screen and calls it the best phone they have owned.",
    ),
    (
        "The package arrived three weeks late and the box was crushed. The blender inside works, but I "
        "won't order from this seller again.",
        "Negative. Although the blender works, the reviewer is unhappy about the late, damaged delivery "
        "and says they will not buy from the seller again.",
    ),
    (
        "The hotel room was clean and the location was convenient. Breakfast was average, nothing special.",
        "Positive, though only mildly. The room and location are praised, while the breakfast is described as merely average.",
    ),
    (
        "I've read the first two chapters. So far it's fine.",
        "Neutral. The reviewer has formed only a lukewarm early impression and expresses no strong feeling either way.",
    ),
    (
        "Absolutely terrible customer service. I was on hold for an hour and then the call dropped.",
        "Negative. The reviewer calls the service \"absolutely terrible\" after a long hold that ended in a dropped call.",
    ),
    (
        "These running shoes are light, comfortable, and held up well through my first marathon.",
        "Positive. The shoes are described as light and comfortable, and they lasted through a full marathon.",
    ),
    (
        "The movie had stunning visuals, but the plot was so confusing that I nearly fell asleep.",
        "Negative. The reviewer compliments the visuals, but the confusing plot and nearly falling asleep dominate the impression.",
    ),
    (
        "The jacket fits as described and arrived on the date promised.",
        "Neutral. The review matter-of-factly confirms that the jacket met expectations, without expressing enthusiasm or disappointment.",
    ),
    (
        "My kids ask to go back to this restaurant every weekend. The staff always remember our names!",
        "Positive. The children love the restaurant and the reviewer appreciates the friendly, attentive staff.",
    ),
    (
        "The app crashes every time I try to upload a photo. Completely useless until they fix it.",
        "Negative. The app crashes on a core feature and the reviewer calls it \"completely useless.\"",
    ),
    (
        "The museum is free on Sundays and takes about two hours to see.",
        "Neutral. The review only gives practical information about admission and visit length.",
    ),
    (
        "I was skeptical at first, but this vacuum picks up every bit of dog hair. Worth every penny.",
        "Positive. The reviewer's initial doubts were overcome and they say the vacuum is worth every penny.",
    ),
]

# --- Animal classification (with input) --------------------------------------
ANIMAL_INSTRUCTION = "Classify the following animal as a mammal, bird, reptile, amphibian, or fish."
ANIMALS = [
    ("dolphin", "Mammal. Dolphins breathe air through a blowhole, give birth to live young, and nurse their calves with milk, even though they live in water."),
    ("penguin", "Bird. Penguins cannot fly, but like all birds they have feathers and a beak and lay eggs; their wings have evolved into flippers."),
    ("salamander", "Amphibian. Salamanders have moist, permeable skin, and most lay their eggs in water, where the young develop before living partly on land."),
    ("bat", "Mammal. Bats are the only mammals capable of true flight; they have fur, give birth to live young, and feed them milk."),
    ("shark", "Fish. Sharks breathe through gills and live their whole lives in water; they are cartilaginous fish, with skeletons made of cartilage rather than bone."),
    ("crocodile", "Reptile. Crocodiles have scaly skin, breathe with lungs, and lay hard-shelled eggs on land."),
    ("platypus", "Mammal. Although the platypus lays eggs, it has fur and feeds its young with milk, making it one of the few egg-laying mammals (monotremes)."),
    ("ostrich", "Bird. The ostrich is the largest living bird; it cannot fly, but it has feathers and a beak and lays hard-shelled eggs."),
    ("seahorse", "Fish. Seahorses are bony fish that breathe through gills and swim with a small dorsal fin; unusually, the males carry and give birth to the young."),
    ("tortoise", "Reptile. Tortoises are land-dwelling reptiles with a protective shell, scaly skin, and lungs, and they lay eggs."),
]

# --- Unit conversions (no input, answers computed) ---------------------------
# (instruction, from-value as written in the instruction, conversion kind)
CONVERSIONS = [
    ("Convert 25 degrees Celsius to Fahrenheit.", "25", "c_to_f"),
    ("Convert -10 degrees Celsius to Fahrenheit.", "-10", "c_to_f"),
    ("Convert 40 degrees Celsius to Fahrenheit.", "40", "c_to_f"),
    ("Convert 98.6 degrees Fahrenheit to Celsius.", "98.6", "f_to_c"),
    ("How many miles is 10 kilometers?", "10", "km_to_mi"),
    ("A marathon is 42.195 kilometers long. How many miles is that?", "42.195", "km_to_mi"),
    ("Convert 5 kilograms to pounds.", "5", "kg_to_lb"),
    ("How many pounds is 70 kilograms?", "70", "kg_to_lb"),
]
KM_PER_MILE = Fraction("1.609344")
KG_PER_POUND = Fraction("0.45359237")

NAMES = [
    "Maria", "Tom", "Aisha", "Kenji", "Lucas", "Priya", "Noah", "Fatima",
    "Elena", "Omar", "Grace", "Diego", "Hannah", "Wei", "Samuel", "Leila",
]


def _num(x) -> str:
    """Format an int/Fraction: integers without decimals, others with up to 2 decimals."""
    x = Fraction(x)
    if x.denominator == 1:
        return f"{x.numerator:,}"
    return f"{float(x):,.2f}".rstrip("0").rstrip(".")


def _money(cents: int) -> str:
    return f"${cents // 100:,}.{cents % 100:02d}"


def _conversion(instruction: str, v: str, kind: str) -> tuple[str, str]:
    value = Fraction(v)
    if kind == "c_to_f":
        res = value * Fraction(9, 5) + 32
        out = (f"Use the formula °F = °C × 9/5 + 32.\n{v} × 9/5 + 32 = {_num(value * Fraction(9, 5))} + 32 = {_num(res)}\n\n"
               f"Answer: {v} °C is {_num(res)} °F.")
    elif kind == "f_to_c":
        res = (value - 32) * Fraction(5, 9)
        out = (f"Use the formula °C = (°F − 32) × 5/9.\n({v} − 32) × 5/9 = {_num(value - 32)} × 5/9 = {_num(res)}\n\n"
               f"Answer: {v} °F is {_num(res)} °C.")
    elif kind == "km_to_mi":
        res = value / KM_PER_MILE
        out = (f"One mile is 1.609344 kilometers, so divide by 1.609344.\n{v} ÷ 1.609344 ≈ {_num(res)}\n\n"
               f"Answer: {v} kilometers is about {_num(res)} miles.")
    elif kind == "kg_to_lb":
        res = value / KG_PER_POUND
        out = (f"One pound is 0.45359237 kilograms, so divide by 0.45359237 (or multiply by about 2.2046).\n"
               f"{v} ÷ 0.45359237 ≈ {_num(res)}\n\nAnswer: {v} kilograms is about {_num(res)} pounds.")
    else:  # pragma: no cover - guarded by the table above
        raise ValueError(kind)
    return instruction, out


# --- Math word problems (no input, numbers drawn from the seeded RNG) -------
def _math_change(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    item = rng.choice(["muffins", "bagels", "croissants", "cupcakes"])
    price = rng.choice(range(125, 400, 25))
    n = rng.randint(2, 6)
    total = price * n
    bill = next(b for b in (1000, 2000, 5000) if b > total)
    change = bill - total
    q = (f"A bakery sells {item} for {_money(price)} each. If {name} buys {n} {item} and pays with a "
         f"${bill // 100} bill, how much change should {name} receive?")
    a = (f"Cost of the {item}: {n} × {_money(price)} = {_money(total)}.\n"
         f"Change: {_money(bill)} − {_money(total)} = {_money(change)}.\n\n"
         f"Answer: {name} should receive {_money(change)} in change.")
    return q, a


def _math_distance(rng: random.Random) -> tuple[str, str]:
    vehicle = rng.choice(["train", "bus", "car", "ferry"])
    v = rng.choice(range(40, 130, 10))
    t = rng.choice([Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)])
    d = v * t
    q = f"A {vehicle} travels at a constant speed of {v} km/h for {_num(t)} hours. How far does it travel?"
    a = (f"Distance = speed × time = {v} km/h × {_num(t)} h = {_num(d)} km.\n\n"
         f"Answer: The {vehicle} travels {_num(d)} kilometers.")
    return q, a


def _math_give_and_buy(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    things = rng.choice(["marbles", "stickers", "trading cards", "seashells"])
    a0 = rng.randint(20, 60)
    gave = rng.randint(5, a0 - 5)
    bought = rng.randint(3, 20)
    left = a0 - gave
    final = left + bought
    q = (f"{name} has {a0} {things}. {name} gives {gave} of them to a friend and then buys {bought} more. "
         f"How many {things} does {name} have now?")
    a = (f"After giving some away: {a0} − {gave} = {left}.\n"
         f"After buying more: {left} + {bought} = {final}.\n\n"
         f"Answer: {name} now has {final} {things}.")
    return q, a


def _math_rectangle(rng: random.Random) -> tuple[str, str]:
    obj, unit, lo, hi = rng.choice([
        ("garden bed", "m", 3, 12), ("rug", "m", 2, 6), ("photo frame", "cm", 10, 40), ("tabletop", "cm", 60, 180),
    ])
    length = rng.randint(lo + 1, hi)
    width = rng.randint(lo, length - 1)
    area = length * width
    perimeter = 2 * (length + width)
    q = f"A rectangular {obj} is {length} {unit} long and {width} {unit} wide. What are its area and perimeter?"
    a = (f"Area = length × width = {length} × {width} = {area:,} {unit}².\n"
         f"Perimeter = 2 × (length + width) = 2 × ({length} + {width}) = {perimeter} {unit}.\n\n"
         f"Answer: The area is {area:,} {unit}² and the perimeter is {perimeter} {unit}.")
    return q, a


def _math_discount(rng: random.Random) -> tuple[str, str]:
    item = rng.choice(["jacket", "pair of headphones", "desk lamp", "backpack", "coffee maker"])
    price = rng.choice([20, 36, 48, 60, 75, 80, 120, 150])
    pct = rng.choice([10, 15, 20, 25, 30, 40])
    discount = price * pct  # in cents: price dollars × pct/100 × 100
    sale = price * 100 - discount
    q = f"A {item} costs ${price} and is on sale for {pct}% off. What is the sale price?"
    a = (f"Discount: {pct}% of ${price} = {_num(Fraction(pct, 100))} × ${price} = {_money(discount)}.\n"
         f"Sale price: ${price}.00 − {_money(discount)} = {_money(sale)}.\n\n"
         f"Answer: The sale price is {_money(sale)}.")
    return q, a


def _math_workers(rng: random.Random) -> tuple[str, str]:
    task = rng.choice(["paint a house", "build a fence", "harvest an orchard", "tile a floor"])
    while True:
        n = rng.randint(2, 6)
        d = rng.randint(4, 12)
        total = n * d
        options = [m for m in range(2, 13) if m != n and total % m == 0 and total // m >= 2]
        if options:
            m = rng.choice(options)
            break
    q = (f"If {n} workers can {task} in {d} days, how many days would it take {m} workers "
         f"working at the same rate?")
    a = (f"The job takes {n} × {d} = {total} worker-days in total.\n"
         f"With {m} workers: {total} ÷ {m} = {total // m} days.\n\n"
         f"Answer: It would take {m} workers {total // m} days.")
    return q, a


def _math_average(rng: random.Random) -> tuple[str, str]:
    name = rng.choice(NAMES)
    scores = [rng.randint(60, 100) for _ in range(5)]
    total = sum(scores)
    avg = Fraction(total, 5)
    listed = ", ".join(str(s) for s in scores[:-1]) + f", and {scores[-1]}"
    q = f"{name} scored {listed} on five quizzes. What is {name}'s average score?"
    a = (f"Sum: {' + '.join(str(s) for s in scores)} = {total}.\n"
         f"Average: {total} ÷ 5 = {_num(avg)}.\n\n"
         f"Answer: {name}'s average score is {_num(avg)}.")
    return q, a


def _math_recipe(rng: random.Random) -> tuple[str, str]:
    cups = rng.choice([2, 3])
    batch = rng.choice([12, 24, 36])
    k = rng.choice([1, 3, 4, 5, 6])  # target = batch * k / 2
    target = batch * k // 2
    factor = Fraction(k, 2)
    need = cups * factor
    unit = "cup" if need == 1 else "cups"
    q = (f"A recipe uses {cups} cups of flour to make {batch} cookies. How many cups of flour are needed "
         f"to make {target} cookies?")
    a = (f"Scale factor: {target} ÷ {batch} = {_num(factor)}.\n"
         f"Flour needed: {cups} × {_num(factor)} = {_num(need)} {unit}.\n\n"
         f"Answer: You need {_num(need)} {unit} of flour.")
    return q, a


MATH_TEMPLATES = [
    _math_change, _math_distance, _math_give_and_buy, _math_rectangle,
    _math_discount, _math_workers, _math_average, _math_recipe,
]
N_MATH = 20
N_SORT = 6

# --- Deliberate defects -------------------------------------------------------
# Near-duplicates: (instruction of the original, reworded instruction); input/output copied.
ALPACA_NEAR_DUPLICATES = [
    ("Give three tips for staying healthy.", "Give three tips for staying fit."),
    ("Explain why the sky is blue.", "Explain why the sky appears blue."),
]
ALPACA_SINGLE_DEFECTS = [
    # empty output (2)
    {"instruction": "Write a short poem about the ocean.", "input": "", "output": ""},
    {
        "instruction": "Summarize the following paragraph.",
        "input": "The museum will close for renovations from May to September. During this period, "
                 "selected works will be shown at the city library.",
        "output": "",
    },
    # whitespace-only output (1)
    {"instruction": "List three household uses for baking soda.", "input": "", "output": "   "},
    # placeholder inputs (3)
    {
        "instruction": "Name the three primary colors of paint in traditional color theory.",
        "input": "<noinput>",
        "output": "In traditional color theory, the three primary colors of paint are red, yellow, and blue.",
    },
    {
        "instruction": "Explain what a noun is.",
        "input": "N/A",
        "output": "A noun is a word that names a person, place, thing, or idea, such as \"teacher,\" "
                  "\"London,\" \"chair,\" or \"freedom.\"",
    },
    {
        "instruction": "Give an example of a renewable resource and explain why it is renewable.",
        "input": "No input",
        "output": "Wind is a renewable resource. It is produced continuously by the Sun unevenly heating "
                  "the Earth's surface, so using it to generate electricity does not use it up.",
    },
    # missing "input" key (1)
    {
        "instruction": "Describe the taste of a lemon in one sentence.",
        "output": "A lemon tastes sharply sour with a bright, slightly bitter citrus tang.",
    },
    # non-string output (1)
    {"instruction": "What is 6 multiplied by 7?", "input": "", "output": 42},
    # missing "instruction" key (1)
    {"input": "I absolutely loved the concert last night!", "output": "Positive"},
]
N_ALPACA_EXACT_DUPLICATES = 3


def _rec(instruction: str, input_: str, output: str) -> dict:
    return {"instruction": instruction, "input": input_, "output": output}


def build_alpaca(rng: random.Random) -> list[dict]:
    clean: list[dict] = []
    clean += [_rec(i, "", o) for i, o in ALPACA_NO_INPUT]
    clean += [_rec(i, x, o) for i, x, o in ALPACA_WITH_INPUT]
    clean += [
        _rec(SENTIMENT_INSTRUCTIONS[k % len(SENTIMENT_INSTRUCTIONS)], review, answer)
        for k, (review, answer) in enumerate(SENTIMENT_REVIEWS)
    ]
    clean += [_rec(ANIMAL_INSTRUCTION, animal, answer) for animal, answer in ANIMALS]
    for conversion in CONVERSIONS:
        question, answer = _conversion(*conversion)
        clean.append(_rec(question, "", answer))

    seen = {r["instruction"] for r in clean}
    k = 0
    while k < N_MATH:
        q, a = MATH_TEMPLATES[k % len(MATH_TEMPLATES)](rng)
        if q in seen:
            continue
        seen.add(q)
        clean.append(_rec(q, "", a))
        k += 1

    for k in range(N_SORT):
        numbers = rng.sample(range(1, 100), rng.randint(6, 9))
        if k % 2 == 0:
            instr, ordered = "Sort the following numbers in ascending order.", sorted(numbers)
        else:
            instr, ordered = "Arrange these numbers from largest to smallest.", sorted(numbers, reverse=True)
        clean.append(_rec(instr, ", ".join(map(str, numbers)), ", ".join(map(str, ordered))))

    records = clean + [dict(r) for r in ALPACA_SINGLE_DEFECTS]
    rng.shuffle(records)

    by_instruction = {r["instruction"]: r for r in clean}
    copies = [
        {"instruction": new, "input": by_instruction[old]["input"], "output": by_instruction[old]["output"]}
        for old, new in ALPACA_NEAR_DUPLICATES
    ]
    near_sources = {old for old, _ in ALPACA_NEAR_DUPLICATES}
    candidates = [r for r in clean if r["instruction"] not in near_sources]
    copies += [dict(r) for r in rng.sample(candidates, N_ALPACA_EXACT_DUPLICATES)]

    # Insert each copy somewhere after its original so "keep first" dedup keeps the original.
    for copy in copies:
        original = next(i for i, r in enumerate(records)
                        if r.get("input") == copy["input"] and r.get("output") == copy["output"])
        records.insert(rng.randint(original + 1, len(records)), copy)
    return records


# =============================================================================
# 2. Summarization conversations (ShareGPT format, English)
# =============================================================================

# (paragraph, one-sentence summary)
SUMMARY_PARAGRAPHS = [
    (
        "The city of Harlow Springs has approved a plan to convert three vacant downtown lots into "
        "community gardens. Residents will be able to rent a plot for a small annual fee, and the city "
        "will provide water access and tool sheds. Officials hope the gardens will bring more foot "
        "traffic to local shops on weekends.",
        "Harlow Springs will turn three vacant downtown lots into rentable community gardens, hoping to "
        "draw more weekend foot traffic to local shops.",
    ),
    (
        "Octopuses have three hearts and blue, copper-based blood. Two of the hearts pump blood through "
        "the gills, while the third circulates it to the rest of the body. The main heart actually stops "
        "beating when an octopus swims, which may be one reason they prefer crawling.",
        "Octopuses have three hearts and copper-based blue blood, and because their main heart stops "
        "while they swim, they tend to crawl instead.",
    ),
    (
        "Researchers have found that teenagers' body clocks naturally shift later during puberty. As a "
        "result, many teens struggle to fall asleep before 11 p.m. but still have to wake early for "
        "school. Several school districts that moved their start times later reported better attendance "
        "and fewer students dozing off in class.",
        "Because teenagers' body clocks shift later, schools that started later saw better attendance "
        "and more alert students.",
    ),
    (
        "After fifteen years of running a bakery from a rented storefront, Lena Ortiz has bought the "
        "building outright. She plans to turn the upstairs apartment into a teaching kitchen for weekend "
        "bread-making classes. The purchase was financed partly by a small-business loan and partly by "
        "preorders from loyal customers.",
        "Baker Lena Ortiz has bought her shop's building, with help from a loan and customer preorders, "
        "and plans to host bread-making classes upstairs.",
    ),
    (
        "Honeybees share the location of food using a movement known as the waggle dance. The angle of "
        "the dance relative to vertical shows the direction of the food compared with the sun, and the "
        "length of the waggle run signals the distance. Other bees follow the dancer closely to learn "
        "the route.",
        "Honeybees use the waggle dance, whose angle and length encode direction and distance, to tell "
        "hive mates where food is.",
    ),
    (
        "A survey of 2,000 office workers found that most prefer a hybrid schedule to working fully "
        "remotely or fully in the office. Respondents valued the focus time at home but missed informal "
        "conversations with colleagues. Managers were more divided, with many saying hybrid teams are "
        "harder to coordinate.",
        "Most surveyed office workers prefer hybrid schedules for the mix of focus and social contact, "
        "though many managers find hybrid teams harder to coordinate.",
    ),
    (
        "The Westbrook Public Library now lends more than books: patrons can borrow sewing machines, "
        "telescopes, and even cake pans. The \"library of things\" began as a small pilot last year and "
        "has grown to over 300 items. Librarians say the most popular item by far is a carpet cleaner.",
        "Westbrook Public Library's \"library of things\" has grown to over 300 lendable items, with a "
        "carpet cleaner the most popular.",
    ),
    (
        "Coral bleaching happens when water that is too warm causes corals to expel the algae living in "
        "their tissues. Because these algae supply most of the coral's food and its color, bleached "
        "corals turn white and weaken. If temperatures return to normal quickly corals can recover, but "
        "prolonged heat often kills them.",
        "Overly warm water makes corals expel the algae that feed and color them, and they may die if "
        "the heat lasts too long.",
    ),
    (
        "Despite steady rain, more than 8,000 runners finished the Lakeside Marathon on Sunday. The men's "
        "race was won by a local schoolteacher who had never before finished in the top ten. Organizers "
        "said the medical tents were quieter than usual because the cool weather reduced cases of heat "
        "exhaustion.",
        "Over 8,000 runners finished a rainy Lakeside Marathon, won in the men's race by a local "
        "teacher, with fewer medical cases thanks to the cool weather.",
    ),
    (
        "Johannes Gutenberg's printing press, developed in the mid-15th century, used movable metal type "
        "to print pages far faster than scribes could copy them. Books became cheaper and more widely "
        "available, which helped spread literacy across Europe. Historians often link the press to the "
        "rapid spread of new ideas during the Renaissance and the Reformation.",
        "Gutenberg's 15th-century movable-type press made books cheaper and more common, spreading "
        "literacy and new ideas across Europe.",
    ),
    (
        "Financial planners commonly recommend an emergency fund equal to three to six months of "
        "essential expenses. The money should be kept somewhere safe and easy to reach, such as a "
        "savings account, rather than invested in stocks. This cushion can keep people from relying on "
        "high-interest credit cards when unexpected costs arise.",
        "Planners advise keeping three to six months of expenses in an accessible savings account so "
        "that surprise costs don't end up on credit cards.",
    ),
    (
        "The latest update to the Notewise app adds offline editing, so users can keep working on "
        "documents without an internet connection. Changes are stored on the device and synced "
        "automatically once the connection returns. The developers also fixed a bug that made some "
        "images appear sideways.",
        "Notewise's latest update adds offline editing with automatic syncing and fixes a bug that "
        "rotated some images.",
    ),
    (
        "Letting meat rest for a few minutes after cooking gives the juices time to redistribute. If you "
        "cut into a steak immediately, more of its juices run out onto the board. A short rest under "
        "loosely tented foil keeps the meat warm while it settles.",
        "Resting meat briefly under foil after cooking keeps it warm and stops its juices from running "
        "out when cut.",
    ),
    (
        "Route 1, often called the Ring Road, circles Iceland for roughly 1,300 kilometers. Many "
        "travelers drive it in a week to ten days, stopping at waterfalls, glaciers, and black-sand "
        "beaches along the way. In winter, however, storms can close sections of the road, so visitors "
        "are advised to check conditions daily.",
        "Iceland's roughly 1,300-kilometer Ring Road is a popular week-long scenic drive, but winter "
        "storms can close parts of it.",
    ),
    (
        "Washing your hands with soap for at least 20 seconds removes many of the germs that cause colds "
        "and stomach bugs. Soap works by breaking up the oily layer that helps dirt and microbes cling to "
        "skin. Hand sanitizer is a useful backup, but it works less well when hands are visibly dirty.",
        "Washing with soap for 20 seconds removes many germs by breaking up oils on the skin, and "
        "sanitizer is only a backup.",
    ),
    (
        "Reading aloud to young children helps them build vocabulary long before they can read on their "
        "own. Picture books often contain words that rarely come up in everyday conversation. Experts "
        "also note that shared reading time strengthens the bond between parent and child.",
        "Reading aloud to young children expands their vocabulary and strengthens the parent-child bond.",
    ),
    (
        "Only a small fraction of all the plastic ever produced has been recycled. Many plastics are hard "
        "to recycle because they are mixed with other materials or contaminated with food. As a result, "
        "some cities are now focusing on reducing single-use plastics rather than relying on recycling "
        "alone.",
        "Because little plastic actually gets recycled, some cities are shifting their focus to cutting "
        "single-use plastics.",
    ),
    (
        "Brightline Foods reported a 12 percent rise in quarterly revenue, driven mainly by strong sales "
        "of its frozen meals. Profits, however, were flat because of higher packaging and shipping "
        "costs. The company said it expects those costs to ease later in the year.",
        "Brightline Foods' revenue rose 12 percent on frozen-meal sales, but higher costs kept profits "
        "flat.",
    ),
    (
        "Jupiter is the largest planet in our solar system, more than eleven times wider than Earth. Its "
        "Great Red Spot is a giant storm that has been observed for centuries. Astronomers have noticed, "
        "however, that the storm has been shrinking over the past several decades.",
        "Jupiter, the solar system's largest planet, hosts the centuries-old Great Red Spot storm, which "
        "has been shrinking for decades.",
    ),
    (
        "After the city added protected bike lanes along Elm Avenue, the number of cyclists using the "
        "street doubled within a year. Local businesses had worried about losing parking spaces, but most "
        "reported no drop in sales. The city is now considering extending the lanes to the waterfront.",
        "Protected bike lanes on Elm Avenue doubled cycling without hurting local businesses, and the "
        "city may extend them.",
    ),
    (
        "Habits form through a loop of cue, routine, and reward. When the same cue repeatedly leads to a "
        "rewarding routine, the behavior gradually becomes automatic. To change a bad habit, experts "
        "suggest keeping the cue and the reward but replacing the routine with something healthier.",
        "Habits grow from a cue-routine-reward loop, so the best way to change one is to swap in a "
        "healthier routine.",
    ),
    (
        "Volunteers at the Riverside Food Bank packed more than 5,000 meal boxes during the holiday "
        "season, a new record. The food bank credits a local high school, whose students organized "
        "weekend shifts, for much of the increase. Demand remains high, and the organization is asking "
        "for donations of canned vegetables and rice.",
        "Helped by high school volunteers, the Riverside Food Bank packed a record 5,000-plus holiday "
        "meal boxes and still needs donations.",
    ),
    (
        "Forecasters expect temperatures to climb above 38°C across the region this weekend. Authorities "
        "are urging residents to drink plenty of water, avoid outdoor exercise in the afternoon, and "
        "check on elderly neighbors. Several public libraries will stay open late as cooling centers.",
        "With temperatures expected above 38°C this weekend, officials urge precautions and libraries "
        "will serve as cooling centers.",
    ),
    (
        "Archaeologists excavating a farm field have uncovered the remains of a Roman-era villa, "
        "including a well-preserved mosaic floor. The mosaic shows dolphins and other sea creatures "
        "surrounding a central figure. The team plans to document the site fully before covering it "
        "again to protect it from the weather.",
        "Archaeologists found a Roman villa with a sea-themed mosaic in a farm field and will document "
        "it before reburying it for protection.",
    ),
    (
        "Language-learning apps make it easy to practice for a few minutes every day, which helps build "
        "a consistent habit. Teachers caution, however, that apps alone rarely lead to fluency. Speaking "
        "with real people, even in short online conversations, remains one of the most effective ways "
        "to improve.",
        "Language apps help build a daily habit, but real conversation is still needed to become fluent.",
    ),
    (
        "Coffee plants grow best in tropical highlands, where temperatures are mild and rainfall is "
        "steady. Rising global temperatures are pushing suitable growing areas to higher altitudes, where "
        "land is limited. Some farmers are experimenting with shade trees and heat-tolerant varieties to "
        "protect their harvests.",
        "Warming is pushing coffee growing uphill onto scarce land, so farmers are trying shade trees "
        "and heat-tolerant plants.",
    ),
    (
        "The Northfield Science Museum has opened an exhibit that lets visitors walk through a giant "
        "model of the human heart. Sensors play the sound of a heartbeat that speeds up as visitors move "
        "faster. The exhibit runs through the end of the year.",
        "Northfield Science Museum's new walk-through heart exhibit, with a heartbeat that responds to "
        "visitors, runs until year's end.",
    ),
    (
        "Cold weather can temporarily reduce the driving range of electric cars because chemical "
        "reactions in the battery slow down at low temperatures. Running the cabin heater also draws "
        "extra power. Preheating the car while it is still plugged in can reduce this loss.",
        "Cold weather cuts electric cars' range by slowing battery chemistry and adding heating load, "
        "which preheating while plugged in can offset.",
    ),
    (
        "Tomato plants need at least six hours of direct sunlight a day to produce a good crop. Watering "
        "deeply but less often encourages strong roots, while wetting the leaves can spread disease. Many "
        "gardeners also add stakes or cages early so the plants don't sprawl on the ground.",
        "Tomatoes do best with six or more hours of sun, deep watering at the roots, and early staking.",
    ),
    (
        "Phishing emails try to trick people into revealing passwords or clicking harmful links. They "
        "often create a sense of urgency, claiming an account will be closed unless the reader acts "
        "immediately. Checking the sender's address carefully and visiting websites directly rather than "
        "through email links reduces the risk.",
        "Phishing emails use urgency to steal passwords, so check senders and avoid clicking email "
        "links.",
    ),
    (
        "Twelve-year-old Mira Chen won the regional chess championship on Saturday, defeating players "
        "more than twice her age. She lost her first game but then won six in a row. Mira said she "
        "prepares by studying classic games for an hour every evening.",
        "Twelve-year-old Mira Chen won the regional chess championship after recovering from a "
        "first-round loss with six straight wins.",
    ),
    (
        "When a central bank raises interest rates, borrowing becomes more expensive for businesses and "
        "households. This tends to slow spending and can help bring inflation down. The downside is that "
        "higher rates can also slow hiring and economic growth.",
        "Raising interest rates curbs borrowing and inflation but can also slow hiring and growth.",
    ),
    (
        "Tardigrades, sometimes called water bears, are microscopic animals known for their extraordinary "
        "toughness. In a dried-out state they can survive extreme cold, intense radiation, and even the "
        "vacuum of space for short periods. When water returns, they rehydrate and carry on as normal.",
        "Microscopic tardigrades can survive extreme cold, radiation, and even space in a dried-out "
        "state, reviving when water returns.",
    ),
    (
        "A new study links long-term exposure to traffic noise with poorer sleep and higher stress. "
        "Residents living near busy roads reported waking more often during the night. The researchers "
        "suggest that quieter road surfaces and better window insulation could reduce these effects.",
        "A study ties long-term traffic noise to poor sleep and stress, suggesting quieter roads and "
        "better insulation as remedies.",
    ),
    (
        "Sourdough bread rises thanks to a starter, a mixture of flour and water that contains wild yeast "
        "and bacteria. The bacteria produce acids that give the bread its tangy flavor. Because a starter "
        "works more slowly than commercial yeast, sourdough often needs many hours to rise.",
        "Sourdough rises slowly using a starter of wild yeast and bacteria, whose acids give it a tangy "
        "flavor.",
    ),
    (
        "The Mill Street Bridge will close for repairs starting Monday and is expected to reopen in about "
        "three months. Drivers are advised to use the Oak Street crossing instead, which may add ten "
        "minutes to some commutes. Pedestrians will still be able to cross on a temporary walkway.",
        "The Mill Street Bridge closes to cars for about three months of repairs from Monday, though a "
        "temporary walkway will stay open.",
    ),
    (
        "The International Space Station circles Earth about every 90 minutes, so the astronauts on board "
        "see around 16 sunrises and sunsets a day. To keep their sleep on track, crew members follow a "
        "strict schedule based on a 24-hour clock. Window shades and sleeping bags attached to the wall "
        "help them rest.",
        "Because the ISS orbits every 90 minutes, astronauts rely on a strict 24-hour schedule to sleep "
        "despite about 16 daily sunrises.",
    ),
    (
        "The Harbor City Hawks ended a nine-game losing streak with a 98-91 win over the Valley Rams on "
        "Friday night. Rookie guard Jamal Reed scored a career-high 27 points, including four "
        "three-pointers in the final quarter. The coach praised the team's defense, which forced 18 "
        "turnovers.",
        "Led by rookie Jamal Reed's career-high 27 points, the Harbor City Hawks beat the Valley Rams "
        "98-91 to end a nine-game losing streak.",
    ),
    (
        "The Silk Road was not a single road but a network of trade routes linking China with Central "
        "Asia, the Middle East, and Europe. Merchants carried silk, spices, and precious metals, but "
        "ideas, religions, and technologies traveled along these routes too. Many goods changed hands "
        "several times before reaching their final destination.",
        "The Silk Road was a network of trade routes between China and Europe that carried ideas and "
        "technologies as well as goods.",
    ),
    (
        "Dietary fiber, found in foods such as beans, oats, fruit, and vegetables, helps keep digestion "
        "regular. It can also make meals more filling, which may help with weight management. Most "
        "adults eat less fiber than health guidelines recommend.",
        "Fiber aids digestion and helps meals feel filling, yet most adults don't eat enough of it.",
    ),
    (
        "Security experts now recommend long passphrases made of several random words instead of short, "
        "complex passwords. A long passphrase is easier to remember and often harder for attackers to "
        "guess. Turning on two-factor authentication adds another layer of protection.",
        "Experts recommend long, random-word passphrases plus two-factor authentication over short "
        "complex passwords.",
    ),
    (
        "Trees planted along city streets can lower nearby surface temperatures by providing shade and "
        "releasing moisture through their leaves. They also absorb some air pollutants and reduce "
        "stormwater runoff. Several cities have set goals to increase their tree cover over the next "
        "decade.",
        "Street trees cool cities, clean the air, and reduce runoff, so several cities aim to plant more.",
    ),
    (
        "A small software company tested a four-day work week for six months without cutting pay. "
        "Employees reported less burnout, and the company said output stayed roughly the same. Some "
        "staff, however, found it hard to fit all their meetings into four days.",
        "A software company's six-month four-day-week trial reduced burnout without hurting output, "
        "though meetings were harder to schedule.",
    ),
    (
        "Arctic terns make one of the longest migrations of any animal, traveling between the Arctic and "
        "the Antarctic every year. Because they follow winding routes, some individuals fly more than "
        "70,000 kilometers in a single year. This lifestyle means they see more daylight than almost any "
        "other creature on Earth.",
        "Arctic terns migrate between the poles each year, flying over 70,000 kilometers and enjoying "
        "more daylight than almost any other animal.",
    ),
    (
        "The Greenfield Folk Festival returns this summer after a two-year break. The three-day event "
        "will feature more than 40 performers, workshops on traditional instruments, and an area for "
        "families. Organizers are encouraging attendees to arrive by shuttle bus because parking is "
        "limited.",
        "After a two-year break, the three-day Greenfield Folk Festival returns with over 40 performers, "
        "and organizers urge visitors to take the shuttle.",
    ),
    (
        "Antibiotics treat infections caused by bacteria, but they have no effect on viruses such as "
        "those that cause the common cold. Taking antibiotics when they are not needed contributes to "
        "antibiotic resistance. Doctors therefore advise using them only when prescribed and exactly as "
        "directed.",
        "Antibiotics work only on bacteria, and misusing them fuels resistance, so they should be taken "
        "only as prescribed.",
    ),
    (
        "Passive houses are designed to use very little energy for heating and cooling. They rely on "
        "thick insulation, airtight construction, and carefully placed windows that capture winter "
        "sunlight. A ventilation system brings in fresh air while recovering heat from the outgoing air.",
        "Passive houses use insulation, airtightness, smart window placement, and heat-recovery "
        "ventilation to need very little heating or cooling.",
    ),
    (
        "The Dead Sea, which borders Jordan, Israel, and the West Bank, is one of the saltiest bodies of "
        "water in the world. Its high salt content lets swimmers float with ease. The water level has "
        "been dropping for decades, largely because water from the Jordan River is diverted for other "
        "uses.",
        "The extremely salty Dead Sea lets swimmers float easily, but its level keeps falling as Jordan "
        "River water is diverted.",
    ),
    (
        "Students from Eastwood High School's robotics team placed second at the state competition with "
        "a robot that sorts recyclable materials. The team spent five months designing and testing it "
        "after school. They will travel to the national championship in April.",
        "Eastwood High's robotics team took second at state with a recycling-sorting robot and will "
        "compete at nationals in April.",
    ),
    (
        "Research suggests that what people call multitasking is usually rapid switching between tasks. "
        "Each switch costs a little time and attention, so doing several things at once often takes "
        "longer than doing them one after another. Tasks that need little thought, such as walking while "
        "talking, are an exception.",
        "Multitasking is really task-switching, which usually makes work slower, except for tasks that "
        "need little thought.",
    ),
    (
        "A large share of food waste happens at home, often because people buy more than they can use "
        "before it spoils. Planning meals for the week, storing food properly, and understanding date "
        "labels all help. \"Best before\" dates usually refer to quality, not safety, so many foods are "
        "still fine to eat after that date.",
        "Households can cut food waste by planning meals, storing food well, and knowing that \"best "
        "before\" dates concern quality rather than safety.",
    ),
    (
        "The lithium-ion batteries in smartphones gradually lose capacity as they go through charge "
        "cycles. Heat speeds up this wear, so leaving a phone in a hot car can shorten its battery life. "
        "Some phones now offer a setting that limits charging to 80 percent to slow the decline.",
        "Phone batteries wear out with charging and heat, and some phones can cap charging at 80 percent "
        "to slow this.",
    ),
    (
        "A new solar farm on the outskirts of Dunmore began supplying power to the grid this week. "
        "Covering about 60 hectares, it is expected to generate enough electricity for roughly 15,000 "
        "homes. Sheep will graze between the rows of panels to keep the grass short.",
        "Dunmore's new 60-hectare solar farm, grazed by sheep, has started supplying power for about "
        "15,000 homes.",
    ),
    (
        "Mary Shelley published Frankenstein in 1818, when she was only twenty years old. The novel tells "
        "the story of a scientist who creates a living being and then abandons it. It is often considered "
        "one of the earliest works of science fiction.",
        "Mary Shelley published Frankenstein, an early science-fiction novel about a scientist who "
        "abandons his creation, in 1818 at age twenty.",
    ),
    (
        "Tides are caused mainly by the Moon's gravity pulling on Earth's oceans, with the Sun playing a "
        "smaller role. Most coastlines see two high tides and two low tides roughly every day. When the "
        "Sun and Moon line up, at new and full moon, the tides are especially strong; these are called "
        "spring tides.",
        "Tides come mainly from the Moon's pull, occur about twice daily, and are strongest as spring "
        "tides when the Sun and Moon align.",
    ),
    (
        "Many people pay for streaming and app subscriptions they rarely use because the charges are "
        "small and automatic. Reviewing bank statements every few months can reveal forgotten services. "
        "Some banking apps now flag recurring payments to make them easier to cancel.",
        "Checking statements regularly, or using bank apps that flag recurring payments, helps people "
        "cancel forgotten subscriptions.",
    ),
    (
        "Sitting for long periods without a break has been linked to back pain and poor circulation. "
        "Standing up and moving for a few minutes every half hour can help. Simple habits, like taking "
        "phone calls while walking, make it easier to stay active during the workday.",
        "Breaking up long periods of sitting with a few minutes of movement every half hour helps avoid "
        "back pain and poor circulation.",
    ),
    (
        "The town of Maple Ridge will hold its first winter lantern walk on December 14. Families are "
        "invited to make paper lanterns at the community center in the afternoon and then join a parade "
        "along the river at dusk. Hot cider will be served at the finish line.",
        "Maple Ridge's first winter lantern walk on December 14 includes afternoon lantern-making and a "
        "riverside parade at dusk.",
    ),
    (
        "A rainbow appears when sunlight enters raindrops, bends, reflects off the back of each drop, and "
        "bends again as it leaves. Because each color bends by a slightly different amount, the light "
        "spreads into a band of colors. That is why you see a rainbow only when the Sun is behind you and "
        "rain is in front of you.",
        "Rainbows form when raindrops bend and reflect sunlight, splitting it into colors, so they appear "
        "only with the Sun behind you.",
    ),
    (
        "A startup founded by two former nurses has developed an app that helps hospitals fill "
        "last-minute shift vacancies. Nurses can see open shifts and claim them from their phones. The "
        "company raised $4 million in its first funding round and plans to expand to three more states.",
        "A nurse-founded startup whose app fills last-minute hospital shifts raised $4 million and plans "
        "to expand to three more states.",
    ),
    (
        "After gray wolves were reintroduced to Yellowstone National Park in 1995, elk began avoiding "
        "certain valleys and riverbanks. With less grazing pressure, willows and aspens recovered in some "
        "areas. Scientists still debate how much of the change was caused by the wolves and how much by "
        "other factors.",
        "After wolves returned to Yellowstone in 1995, elk behavior changed and some trees recovered, "
        "though scientists debate the wolves' exact role.",
    ),
    (
        "To reduce jet lag, travelers are often advised to shift their sleep schedule gradually a few "
        "days before departure. Morning sunlight at the destination helps reset the body clock. Avoiding "
        "heavy meals and alcohol on the flight can also make the adjustment easier.",
        "Shifting sleep before a trip, getting morning sun on arrival, and avoiding heavy meals and "
        "alcohol in flight all ease jet lag.",
    ),
    (
        "Hospitals are testing software that reads medical scans and highlights areas that may need a "
        "closer look. In early trials the tools helped radiologists work faster without missing more "
        "problems. Doctors stress that the software is meant to assist specialists, not replace them.",
        "Scan-reading software sped up radiologists in early hospital trials without more missed "
        "findings, and is meant to assist rather than replace them.",
    ),
    (
        "Sound travels as vibrations through air, water, or solid materials. It moves faster in water "
        "than in air, and faster still in many solids such as steel. In the vacuum of space there is no "
        "medium to carry the vibrations, so sound cannot travel at all.",
        "Sound is a vibration that needs a medium, moving fastest in solids, and cannot travel through "
        "the vacuum of space.",
    ),
    (
        "Birdwatching has grown in popularity, partly thanks to free apps that can identify birds from "
        "photos or recordings of their songs. Beginners are encouraged to start in their own backyard or "
        "a local park. A pair of binoculars and a notebook are usually all the equipment needed.",
        "Free identification apps are helping birdwatching grow, and beginners need little more than "
        "binoculars and a notebook.",
    ),
]

# (paragraph, one-sentence summary, shorter summary for the follow-up turn)
SUMMARY_MULTI_TURN = [
    (
        "Mount Kelda, a volcano that had been quiet for more than a century, began releasing steam and "
        "small amounts of ash last week. Scientists have raised the alert level and installed extra "
        "monitoring equipment around the crater. Nearby villages have not been evacuated, but residents "
        "have been told to prepare emergency bags.",
        "Long-dormant Mount Kelda has started emitting steam and ash, prompting a higher alert level, "
        "more monitoring, and advice for nearby residents to prepare emergency bags.",
        "Dormant Mount Kelda is stirring, raising the alert level.",
    ),
    (
        "Old phones and laptops contain valuable metals such as gold, copper, and cobalt. Recycling them "
        "properly recovers these materials and keeps toxic substances out of landfills. Many electronics "
        "stores now offer free drop-off bins for used devices.",
        "Properly recycling old electronics, now easy at many stores' free drop-off bins, recovers "
        "valuable metals and keeps toxins out of landfills.",
        "Recycling old electronics recovers metals and reduces toxic waste.",
    ),
    (
        "The human body is roughly 60 percent water, and even mild dehydration can cause headaches and "
        "tiredness. How much water a person needs depends on their size, activity level, and the "
        "climate. Thirst is a reasonable guide for most healthy adults, and foods like fruit and soup "
        "also count toward daily intake.",
        "Water needs vary with size, activity, and climate, but thirst is a reasonable guide for most "
        "healthy adults, and food contributes too.",
        "Water needs vary; thirst is usually a good guide.",
    ),
    (
        "The national rail operator announced that a new high-speed line between Port Alder and Grenview "
        "will open next spring. The journey, which currently takes about three hours, will be cut to "
        "seventy minutes. Ticket prices have not yet been announced.",
        "A new high-speed line opening next spring will cut the Port Alder-Grenview trip from about three "
        "hours to seventy minutes, with fares still to be announced.",
        "New rail line cuts Port Alder-Grenview trip to 70 minutes.",
    ),
    (
        "Animal shelters often see a rise in adoptions during the holidays, followed by more returned "
        "pets a few months later. Shelter staff encourage families to think about the long-term costs "
        "and time commitment before adopting. Some shelters now offer foster-to-adopt programs so "
        "families can try living with a pet first.",
        "To reduce post-holiday pet returns, shelters urge families to weigh the long-term commitment and "
        "offer foster-to-adopt trials.",
        "Shelters urge careful thought before adopting pets.",
    ),
    (
        "A Mars rover has collected rock samples from an ancient river delta inside a crater. Scientists "
        "believe the area once held a lake, making it a promising place to look for signs of past "
        "microbial life. The samples are being stored in sealed tubes for a possible future mission to "
        "bring them back to Earth.",
        "A Mars rover has sealed away rock samples from an ancient lakebed delta that may hold signs of "
        "past life, awaiting a possible return mission.",
        "Rover collects Martian samples to search for past life.",
    ),
    (
        "After 40 years in business, the Blue Kettle Café on Harbor Road will close at the end of the "
        "month. The owners, who are retiring, said they could not find a buyer willing to keep the café's "
        "original menu. Regular customers are planning a farewell breakfast on the final Saturday.",
        "The Blue Kettle Café will close at the end of the month after 40 years because its retiring "
        "owners found no buyer to keep its menu.",
        "The Blue Kettle Café closes after 40 years.",
    ),
    (
        "Short daily meditation sessions may help reduce stress and improve concentration. Beginners "
        "often start with five minutes of focusing on their breathing, gently returning their attention "
        "whenever the mind wanders. Over time, many people find it easier to stay calm in stressful "
        "situations.",
        "Starting with just five minutes of breath-focused meditation a day can reduce stress and "
        "improve concentration over time.",
        "Brief daily meditation can lower stress.",
    ),
    (
        "Many mountain glaciers around the world are shrinking as average temperatures rise. In the short "
        "term melting glaciers can increase river flow, but over the long term communities that depend on "
        "glacier meltwater may face shortages. Scientists are tracking these changes with satellite "
        "images and measurements on the ground.",
        "Rising temperatures are shrinking mountain glaciers, which may briefly boost river flow but "
        "threaten long-term water supplies for communities downstream.",
        "Shrinking glaciers threaten future water supplies.",
    ),
    (
        "Oakdale Elementary School will stop assigning homework to students in kindergarten through "
        "second grade starting next fall. Instead, teachers will ask families to read together for at "
        "least 20 minutes each evening. The principal said the change is based on research showing "
        "limited benefits of homework for very young children.",
        "Starting next fall, Oakdale Elementary will replace homework for kindergarten through second "
        "grade with 20 minutes of nightly family reading.",
        "Oakdale drops early-grade homework for family reading.",
    ),
]

# Paragraphs used only by the deliberately defective conversations.
SUMMARY_NO_ANSWER_PARAGRAPH = (
    "The annual book fair at Crestwood Middle School raised $3,200 for new classroom libraries. Parents "
    "volunteered at the checkout tables, and local authors signed copies of their books. The school "
    "plans to hold a second fair in the spring."
)
SUMMARY_EMPTY_ANSWER_PARAGRAPH = (
    "Swimming is a low-impact exercise that works muscles throughout the whole body. Because water "
    "supports the body's weight, it is often recommended for people recovering from joint injuries. "
    "Even a few short sessions a week can improve cardiovascular fitness."
)
SUMMARY_BROKEN_PARAGRAPH = (
    "The old lighthouse on Gull Point has been restored by a volunteer group and will open to visitors "
    "this summer. Guests will be able to climb the spiral staircase to the lantern room for views across "
    "the bay.",
    "Restored by volunteers, the Gull Point lighthouse opens to visitors this summer, offering bay views "
    "from its lantern room.",
)
SUMMARY_BROKEN_CUT_AFTER = "climb the spiral st"  # the line is truncated right after this text
SUMMARY_BROKEN_LINE_NUMBER = 40  # 1-based line number of the broken line

SUMMARY_PROMPTS = [
    "Summarize the following paragraph in one sentence.\n\n{text}",
    "Can you give me a one-sentence summary of this?\n\n{text}",
    "Please summarize this in a single sentence:\n\n{text}",
    "{text}\n\nSummarize the paragraph above in one sentence.",
    "TL;DR in one sentence, please:\n\n{text}",
    "Write a one-sentence summary of the text below.\n\n{text}",
]
SUMMARY_FOLLOW_UPS = [
    "Make it shorter.",
    "Can you make it shorter?",
    "Shorter, please.",
    "Make it shorter, under ten words.",
]
SHAREGPT_SYSTEM_PROMPT = "You are a concise assistant."
N_SHAREGPT_SYSTEM = 10
N_SHAREGPT_EXACT_DUPLICATES = 2


def _turn(role: str, value: str) -> dict:
    return {"from": role, "value": value}


def build_sharegpt(rng: random.Random) -> list[str]:
    """Return the JSONL lines (without trailing newlines) for the summarization file."""
    def prompt(text: str) -> str:
        return rng.choice(SUMMARY_PROMPTS).format(text=text)

    paragraphs = list(SUMMARY_PARAGRAPHS)
    rng.shuffle(paragraphs)
    with_system = paragraphs[:N_SHAREGPT_SYSTEM]
    plain = paragraphs[N_SHAREGPT_SYSTEM:]

    convs: list[dict] = []
    for text, summary in with_system:
        convs.append({"conversations": [
            _turn("system", SHAREGPT_SYSTEM_PROMPT), _turn("human", prompt(text)), _turn("gpt", summary),
        ]})
    for text, summary in plain:
        convs.append({"conversations": [_turn("human", prompt(text)), _turn("gpt", summary)]})
    for text, summary, shorter in SUMMARY_MULTI_TURN:
        convs.append({"conversations": [
            _turn("human", prompt(text)), _turn("gpt", summary),
            _turn("human", rng.choice(SUMMARY_FOLLOW_UPS)), _turn("gpt", shorter),
        ]})
    # Defects: last turn from human (no answer), and an empty gpt answer.
    convs.append({"conversations": [_turn("human", prompt(SUMMARY_NO_ANSWER_PARAGRAPH))]})
    convs.append({"conversations": [_turn("human", prompt(SUMMARY_EMPTY_ANSWER_PARAGRAPH)), _turn("gpt", "")]})
    rng.shuffle(convs)

    lines = [json.dumps(c, ensure_ascii=False) for c in convs]

    # Exact duplicates of plain two-turn conversations, placed after their originals.
    plain_idx = [i for i, c in enumerate(convs)
                 if len(c["conversations"]) == 2 and c["conversations"][1]["value"]]
    for src in sorted(rng.sample(plain_idx, N_SHAREGPT_EXACT_DUPLICATES), reverse=True):
        lines.insert(rng.randint(src + 1, len(lines)), lines[src])

    # One line of broken JSON: a valid record truncated in the middle of a string value.
    text, summary = SUMMARY_BROKEN_PARAGRAPH
    full = json.dumps({"conversations": [_turn("human", prompt(text)), _turn("gpt", summary)]},
                      ensure_ascii=False)
    broken = full[: full.index(SUMMARY_BROKEN_CUT_AFTER) + len(SUMMARY_BROKEN_CUT_AFTER)]
    lines.insert(SUMMARY_BROKEN_LINE_NUMBER - 1, broken)
    return lines


# =============================================================================
# 3. Chinese Q&A (OpenAI messages format)
# =============================================================================

ZH_SYSTEM_PROMPT = "你是一个乐于助人的助手。"

# (question, answer), grouped by topic.
ZH_QA = [
    # --- 日常生活 ---
    ("为什么切洋葱的时候会流眼泪？",
     "洋葱的细胞被切破后，会释放出一种含硫的挥发性物质（丙硫醛-S-氧化物）。它飘到眼睛里，刺激角膜上的神经，"
     "泪腺就会分泌泪水来冲洗。想减轻这种情况，可以先把洋葱放进冰箱冷藏半小时，用锋利的刀快速切，或者在通风的地方操作。"),
    ("衣服上沾了油渍，怎么洗干净？",
     "油渍最好尽早处理：\n1. 先用纸巾轻轻吸掉表面的油，不要来回搓。\n2. 在油渍处挤一点洗洁精，用手指揉匀，静置10分钟左右，"
     "让洗洁精把油分解掉。\n3. 用温水搓洗，再按平常的方法放进洗衣机清洗。\n如果是陈旧的油渍，可以重复几次，或者使用专门的衣物去渍剂。"),
    ("冬天总是被静电电到，有什么办法预防？",
     "冬天空气干燥，静电更容易积累。可以试试这些方法：\n1. 用加湿器把室内湿度保持在40%～60%。\n2. 多穿棉质衣物，减少化纤和羊毛衣物的摩擦。\n"
     "3. 洗澡后涂抹润肤乳，保持皮肤湿润。\n4. 触摸门把手、车门之前，先用钥匙或手掌大面积接触墙壁，把电荷慢慢放掉。"),
    ("怎样去除水壶里的水垢？",
     "水垢的主要成分是碳酸钙和氢氧化镁，用酸性物质就能溶解。常用的方法是：在水壶里倒入适量清水，加入两三勺白醋或一小包柠檬酸，"
     "煮沸后关火浸泡半小时到一小时，然后倒掉，用清水反复冲洗几遍即可。电水壶同样适用，但注意不要让液体接触底座的电器部分。"),
    ("新买的衣服为什么最好先洗再穿？",
     "新衣服在生产、运输和存放过程中，可能残留甲醛、染料、浆料和灰尘，试穿过的衣服还可能沾上别人的细菌。直接贴身穿，"
     "敏感的人容易出现皮肤瘙痒或过敏。所以新衣服，尤其是内衣和贴身衣物，最好先用清水洗一遍再穿；深色衣服第一次最好单独洗，以免掉色染到别的衣服。"),
    ("怎么判断鸡蛋新不新鲜？",
     "一个简单的方法是“清水测试”：把鸡蛋放进一碗清水里。\n- 沉到碗底并平躺：比较新鲜。\n- 沉底但一头翘起或竖立：放了一段时间，要尽快吃完。\n"
     "- 浮在水面上：很可能已经不新鲜，不建议食用。\n原理是鸡蛋放久了，内部水分蒸发，气室变大，所以会越来越容易浮起来。另外，打开后蛋黄饱满、蛋清浓稠的也说明比较新鲜。"),
    ("家里养什么绿植比较好打理？",
     "适合新手的绿植有：\n1. 绿萝：耐阴，长得快，土干了再浇水即可。\n2. 虎皮兰：非常耐旱，半个月浇一次水都没问题。\n"
     "3. 吊兰：适应性强，还能长出许多小苗用来分株。\n4. 龟背竹：喜欢散射光，叶子形状好看。\n这些植物都怕积水，浇水时注意“见干见湿”，不要让花盆长期泡在水里。"),
    ("成年人每天应该喝多少水？",
     "根据《中国居民膳食指南（2022）》，在温和气候条件下、身体活动水平较低的成年人，男性每天大约喝水1700毫升，女性大约1500毫升。"
     "如果天气炎热、运动量大或者出汗多，需要适当增加。喝水最好少量多次，不要等到口渴才喝，白开水或淡茶水是比较好的选择。"),
    ("为什么吃完饭不建议马上剧烈运动？",
     "吃饭后，身体会把较多的血液输送到胃肠道帮助消化。如果这时候剧烈运动，血液被调往肌肉，胃肠道供血减少，消化会受影响，"
     "还可能出现腹痛、恶心或岔气。另外，胃里装满食物时剧烈跑跳，也容易感到不适。一般建议饭后休息半小时到一小时再进行中等强度的运动，饭后散散步则没有问题。"),
    ("雷雨天在户外，应该怎样避雷？",
     "雷雨天在户外要注意：\n1. 尽快进入有防雷设施的建筑物或封闭的汽车内。\n2. 不要在大树、电线杆、广告牌下避雨。\n"
     "3. 远离山顶、空旷的田野和水边，不要在雷雨中游泳或钓鱼。\n4. 如果实在无处躲避，应双脚并拢蹲下，尽量降低身体高度，不要趴在地上。\n5. 不要手持金属长杆，比如雨伞、鱼竿。"),
    ("干粉灭火器怎么正确使用？",
     "可以记住“一提、二拔、三握、四压”：\n1. 提：提起灭火器，使用前上下颠倒摇晃几次，让干粉松动。\n2. 拔：拔掉保险销。\n"
     "3. 握：一手握住喷管，对准火焰根部。\n4. 压：另一只手用力压下压把，站在上风方向，由近及远左右扫射。\n注意不要对着火焰上部喷，火灭后还要留意是否复燃。"),
    ("长时间看电脑眼睛干涩，怎么缓解？",
     "可以试试以下方法：\n1. 遵循“20-20-20”法则：每看屏幕20分钟，就看向6米（约20英尺）外的地方20秒。\n2. 有意识地多眨眼，保持眼表湿润。\n"
     "3. 调整屏幕亮度，使其与环境光线接近，屏幕略低于视线。\n4. 使用加湿器，避免空调直吹脸部。\n如果症状持续或伴有视力下降，应及时去医院眼科检查。"),
    ("搬家时怎样打包易碎物品？",
     "打包易碎物品的几个要点：\n1. 每件物品单独用报纸、气泡膜或旧衣服包好。\n2. 盘子竖着放，像放唱片一样，比平放更不容易压碎。\n"
     "3. 箱底和空隙处塞满纸团或泡沫，避免物品在箱内晃动。\n4. 箱子不要装得太重，外面写上“易碎”并标明向上的方向。\n5. 贵重或特别易碎的物品最好自己随身携带。"),
    ("吃不完的剩米饭应该怎么保存？",
     "米饭在室温下放置太久，可能滋生蜡样芽孢杆菌，它产生的毒素加热后也不一定能被破坏。所以剩米饭应尽快放凉，"
     "最好在两小时内装进密封盒放入冰箱冷藏，一般一到两天内吃完；如果短期吃不完，可以分装冷冻。再次食用时要彻底加热，不建议反复加热多次。"),
    ("手机一边充电一边玩安全吗？",
     "使用原装或正规合格的充电器时，边充电边使用手机一般是安全的，但有几点需要注意：\n1. 充电时玩大型游戏，手机发热会比较明显，长期高温会加速电池老化。\n"
     "2. 不要在床上、被子里充电，避免散热不良。\n3. 避免使用来路不明的劣质充电器和数据线。\n4. 如果发现手机异常发烫、鼓包，应立即停止使用。"),

    # --- 科学常识 ---
    ("天空为什么是蓝色的？",
     "太阳光由不同颜色的光组成。阳光穿过大气层时，会被空气分子散射，而波长越短的光散射得越厉害，这叫作瑞利散射。"
     "蓝光的波长较短，被散射到天空的各个方向，所以我们抬头看到的天空是蓝色的。紫光的波长更短，但人眼对紫光不太敏感，而且一部分紫光在高层大气中被吸收了。"),
    ("月亮为什么会有阴晴圆缺？",
     "月亮本身不发光，我们看到的是它反射的太阳光。月亮绕地球公转，太阳、地球、月亮三者的相对位置不断变化，"
     "我们从地球上看到的月亮被照亮的部分也就不断变化，于是出现了新月、上弦月、满月、下弦月等月相。一个完整的月相周期大约是29.5天。"),
    ("海水为什么是咸的？",
     "雨水冲刷陆地上的岩石和土壤，会把其中的矿物质溶解，再通过河流带进大海。海水蒸发时，水分子进入大气，盐分却留了下来，"
     "经过亿万年的积累，海水就越来越咸。此外，海底火山和热液喷口也会向海水中释放一些矿物质。海水中的盐主要是氯化钠。"),
    ("光年是时间单位吗？",
     "不是。光年是长度单位，指光在真空中一年所走的距离，大约是9.46万亿公里。天文学中的距离非常遥远，用公里来表示数字太大，"
     "所以常用光年来衡量。比如离太阳系最近的恒星比邻星，距离我们约4.2光年。"),
    ("人体最大的器官是什么？",
     "人体最大的器官是皮肤。成年人的皮肤总面积约为1.5到2平方米，重量约占体重的16%左右。皮肤可以保护身体免受外界伤害、"
     "阻挡病菌，还能调节体温、感受冷热和触觉。如果只说内脏器官，最大的是肝脏。"),
    ("地震是怎么发生的？",
     "地球表层由许多块巨大的岩石板块组成，它们一直在缓慢运动。板块之间相互挤压、拉伸或错动时，岩石中会积累巨大的能量。"
     "当这些能量超过岩石能承受的极限时，岩层就会突然断裂或错动，能量以地震波的形式向四周传播，引起地面震动，这就是地震。"),
    ("铁为什么会生锈？",
     "铁生锈是一种化学反应：铁与空气中的氧气和水同时接触，会逐渐生成疏松的铁锈，主要成分是含水的氧化铁。"
     "如果环境中有盐分，比如海边或冬天撒了融雪盐的路面，生锈会更快。防止生锈的办法是隔绝氧气和水，比如刷漆、涂油、镀锌或者做成不锈钢。"),
    ("植物为什么需要阳光？",
     "植物需要阳光来进行光合作用。叶片中的叶绿素吸收光能，把从空气中吸收的二氧化碳和从根部吸收的水转化为葡萄糖等有机物，"
     "同时释放出氧气。这些有机物是植物生长所需的能量和原料。没有足够的阳光，植物就会长得细弱、叶子发黄。"),
    ("声音能在真空中传播吗？",
     "不能。声音是由物体振动产生的，需要通过空气、水或固体等介质来传播。真空中没有介质，振动无法传递，所以声音无法传播。"
     "这也是为什么宇航员在太空中需要通过无线电交流。声音在固体中传播得最快，在液体中次之，在气体中最慢。"),
    ("飞机那么重，为什么能飞起来？",
     "飞机能飞起来，主要靠机翼产生的升力。飞机在跑道上高速滑行时，空气流过机翼。由于机翼特殊的形状和一定的迎角，"
     "机翼会把气流向下偏转，同时上表面的气压低于下表面，于是产生向上的升力。当速度足够快、升力大于飞机的重量时，飞机就能离开地面。发动机则提供推力，让飞机保持前进的速度。"),
    ("DNA是什么？",
     "DNA的全称是脱氧核糖核酸，是绝大多数生物储存遗传信息的物质。它由两条长链相互缠绕，形成双螺旋结构，"
     "链上的四种碱基（A、T、C、G）按照一定顺序排列，就像密码一样记录着生物体的遗传信息。孩子长得像父母，就是因为从父母那里继承了DNA。"),
    ("为什么夏天白天长，冬天白天短？",
     "这是因为地球的自转轴是倾斜的，与公转轨道平面的垂线大约成23.5度的夹角。以北半球为例，夏天北半球倾向太阳，"
     "太阳直射点在北半球，白天的时间比黑夜长；冬天北半球背向太阳，太阳直射点移到南半球，白天就变短了。南半球的情况正好相反。"),
    ("水的沸点一定是100摄氏度吗？",
     "不一定。100摄氏度是在一个标准大气压下水的沸点。气压越低，沸点越低：在海拔较高的地方，比如青藏高原，水可能在85摄氏度左右就沸腾了，"
     "所以在高原上煮饭要用高压锅。相反，高压锅内气压升高，水的沸点可以超过100摄氏度，食物熟得更快。另外，水中溶解了盐等物质，沸点也会略微升高。"),
    ("为什么冬天北方比南方冷得多？",
     "主要有两个原因：一是纬度不同，北方纬度高，冬季太阳高度角小，白天短，地面接收到的太阳热量少；"
     "二是冬季风的影响，来自西伯利亚和蒙古一带的寒冷干燥气流南下，首先影响北方，而秦岭等山脉对冷空气有一定阻挡作用，南方受到的影响相对较小。"),
    ("彩虹是怎么形成的？",
     "彩虹是阳光遇到空气中的小水滴时形成的。阳光射入水滴时发生折射，在水滴内部反射后，射出时再次折射。"
     "不同颜色的光折射程度不同，于是白光被分解成红、橙、黄、绿、蓝、靛、紫等颜色。所以彩虹通常出现在雨后，而且观察者要背对太阳才能看到。"),

    # --- 烹饪 ---
    ("红烧肉怎么做才能肥而不腻？",
     "几个关键步骤：\n1. 选用五花肉，切块后冷水下锅焯水，加姜片和料酒去腥，撇去浮沫。\n2. 焯好的肉块放入锅中小火煸炒，把一部分肥油逼出来，这一步是不腻的关键。\n"
     "3. 用冰糖炒出糖色，再下肉块翻炒上色。\n4. 加入生抽、老抽、姜、葱、八角，倒入没过肉的热水，小火慢炖一小时左右。\n5. 最后大火收汁，让汤汁裹在肉上即可。"),
    ("煮饺子时为什么要点几次凉水？",
     "饺子下锅后，水开时加一小碗凉水，这叫“点水”，一般点两到三次。这样做是为了让水温降下来，防止大火一直猛煮把饺子皮煮破，"
     "同时让馅料有足够的时间熟透。如果是速冻饺子，现在很多人也会盖上锅盖中火煮，效果同样不错。"),
    ("西红柿炒鸡蛋，先炒鸡蛋还是先炒西红柿？",
     "一般建议先炒鸡蛋。先把鸡蛋液倒进热油里，炒到刚刚凝固就盛出来，这样鸡蛋比较嫩。然后再炒西红柿，炒出汁水后加少许盐和一点糖调味，"
     "最后把鸡蛋倒回锅里翻炒均匀。如果喜欢汤汁多一点，西红柿可以先用开水烫一下去皮，炒的时候更容易出汁。"),
    ("怎样蒸出像布丁一样嫩滑的鸡蛋羹？",
     "1. 鸡蛋打散，加入约1.5倍的温水（不要用开水或冷水），加少许盐搅匀。\n2. 用筛网把蛋液过滤一遍，再撇去表面的气泡。\n"
     "3. 碗上盖一个盘子或包上保鲜膜，防止水汽滴进去。\n4. 水开后放入，中小火蒸10分钟左右，关火再焖两分钟。\n5. 出锅后淋上生抽和香油即可。"),
    ("炒青菜怎样才能保持颜色翠绿？",
     "几个小技巧：\n1. 锅要烧热，油温高一些，大火快炒，缩短加热时间。\n2. 可以先焯水：水里加少许盐和几滴油，青菜烫几十秒就捞出过凉水，再下锅快炒。\n"
     "3. 炒的时候不要盖锅盖。\n4. 醋和酱油等深色调料会让青菜变黄变暗，尽量少放或最后再放。"),
    ("用电饭煲煮米饭，米和水的比例是多少？",
     "一般来说，大米和水的体积比大约是1:1.2到1:1.5。新米含水量高，水可以少放一些；陈米比较干，水要多放一点。"
     "一个简单的经验方法是：米洗好铺平后，把手掌平放在米上，水面刚好没过手背即可。煮前把米浸泡二三十分钟，煮出来的米饭会更香软。"),
    ("油炸食物时，怎么判断油温够了？",
     "没有温度计时，可以把一根干的木筷子插进油里：\n- 筷子周围几乎没有气泡：油温偏低，约三四成热。\n- 周围冒出细密的小气泡：约五六成热（大约150℃到180℃），适合炸大多数食物。\n"
     "- 气泡又大又多、响声明显：油温很高，适合复炸让表面更酥脆。\n也可以滴一点面糊进去，面糊迅速浮起说明油温合适。"),
    ("做鱼时怎样去腥？",
     "常用的去腥方法有：\n1. 处理干净：把鱼腹内的黑膜和血线去掉，这是腥味的主要来源。\n2. 腌制：用姜片、葱段、料酒和少许盐腌15分钟左右。\n"
     "3. 煎鱼前把鱼身擦干，锅要烧热，煎至两面金黄再加调料。\n4. 烹饪时加入姜、蒜、紫苏或少量醋，也能进一步去除腥味。"),
    ("蒸馒头时，面团要发酵多久？",
     "发酵时间主要取决于温度。室温在25到30摄氏度时，用酵母发面一般需要1小时左右；冬天温度低，可能需要2到3小时，"
     "可以把面盆放在温暖的地方加快发酵。判断方法是：面团体积膨胀到原来的两倍左右，用手指戳一个洞，洞口不回缩也不塌陷，就说明发好了。"),
    ("冷冻的肉怎么解冻比较好？",
     "最推荐的方法是提前一天把肉从冷冻室移到冷藏室，让它慢慢解冻，这样汁水流失少，也更安全。如果着急，可以把肉装在密封袋里，"
     "浸在冷水中，每半小时换一次水；也可以用微波炉的解冻功能，但解冻后要马上烹饪。不建议放在室温下长时间解冻，也不要反复冷冻和解冻。"),
    ("做糖醋汁有什么简单的比例？",
     "家常常用的是“12345”比例：1勺料酒、2勺生抽、3勺白糖、4勺醋、5勺清水，搅拌均匀就是一碗基础的糖醋汁。"
     "喜欢浓稠一点的，可以在最后加少许水淀粉勾芡。这个比例适合糖醋排骨、糖醋里脊等菜，可以根据口味调整糖和醋的多少。"),
    ("凉拌黄瓜为什么要拍而不是切？",
     "拍黄瓜时，黄瓜会裂开形成不规则的裂口，表面积更大，调料更容易渗进去，吃起来更入味。而且拍碎的黄瓜保留了更多的清脆口感，"
     "能闻到黄瓜的清香。拍完后再用刀切成小段，加蒜末、醋、生抽、香油和少许盐拌匀，稍微腌几分钟就可以吃了。"),

    # --- 旅行 ---
    ("第一次去北京旅游，有哪些值得去的景点？",
     "第一次去北京，可以考虑这些地方：\n1. 故宫：明清两代的皇宫，需要提前在官方渠道实名预约门票，周一通常闭馆。\n2. 天安门广场：可以早起看升旗仪式。\n"
     "3. 长城：八达岭交通方便，慕田峪人相对少一些。\n4. 颐和园：皇家园林，适合慢慢逛。\n5. 天坛：古代皇帝祭天的地方。\n6. 南锣鼓巷、什刹海一带：逛胡同，感受老北京的生活气息。"),
    ("去西藏旅游，怎样预防高原反应？",
     "预防高原反应可以注意以下几点：\n1. 出发前保证充足睡眠，避免感冒，身体状态不好时不要贸然上高原。\n2. 到达后前一两天尽量休息，动作放慢，不要剧烈运动。\n"
     "3. 多喝水，饮食清淡，不要饮酒。\n4. 刚到时尽量不要洗澡，以免着凉。\n5. 有条件的话，可以循序渐进，先在海拔较低的地方适应。\n如果出现严重头痛、呼吸困难、意识模糊等症状，要立即吸氧并就医。"),
    ("坐高铁可以带充电宝吗？",
     "可以。高铁对充电宝的限制比飞机宽松，乘客可以正常携带充电宝上车使用。不过要注意选择质量合格的产品，"
     "充电时不要放在座位缝隙或被衣物覆盖，以免发热。如果是坐飞机，规定就严格得多：充电宝不能托运，只能随身携带，而且对容量有限制。"),
    ("去云南旅游，什么季节最合适？",
     "云南大部分地区气候温和，一年四季都可以去，但比较推荐的是春季（3月到5月）和秋季（9月到11月）。这两个时间段天气晴朗、雨水较少，"
     "昆明、大理、丽江都很舒适。夏季是雨季，风景虽然青翠，但要注意山区道路可能受降雨影响；冬季去西双版纳则比较暖和。另外，滇西北的香格里拉海拔较高，任何季节都要注意保暖和防晒。"),
    ("第一次出国旅游，需要准备哪些证件和材料？",
     "一般需要准备：\n1. 护照：确认有效期，很多国家要求入境时护照剩余有效期在6个月以上。\n2. 签证：查清目的地是否需要签证，或是否可以免签、落地签。\n"
     "3. 往返机票和酒店预订信息。\n4. 旅行保险：部分国家办理签证时要求提供。\n5. 备用的证件照片和护照复印件，与原件分开存放。\n另外还要准备好当地货币或可在境外使用的银行卡。"),
    ("杭州西湖有哪些著名的景点？",
     "西湖周边的著名景点有：断桥残雪、苏堤春晓、三潭印月、平湖秋月、雷峰夕照、花港观鱼、柳浪闻莺等，这些都属于“西湖十景”。"
     "此外，湖边不远处的灵隐寺和飞来峰也很值得一去。游览西湖可以骑自行车环湖，也可以坐游船到湖心的小瀛洲。"),
    ("自驾游出发前要检查车辆的哪些地方？",
     "出发前建议检查：\n1. 轮胎：胎压是否正常，有无鼓包和裂纹，备胎是否可用。\n2. 机油、冷却液、刹车油、玻璃水是否充足。\n"
     "3. 刹车是否灵敏。\n4. 灯光：大灯、转向灯、刹车灯是否正常。\n5. 随车工具：三角警示牌、千斤顶、灭火器、应急电源等。\n长途出行前最好去维修店做一次全面检查。"),
    ("旅游时怎样避免被宰？",
     "几个实用的建议：\n1. 不参加价格明显低于市场价的“低价团”“一日游”，这类行程常常强制购物。\n2. 打车使用正规出租车或打车软件，上车前确认打表。\n"
     "3. 吃饭前先看菜单和价格，问清楚海鲜等按斤计价的菜品单价。\n4. 对主动搭讪、推荐景点或饭店的人保持警惕。\n5. 保留好消费凭证，遇到问题可以拨打当地的消费者投诉电话12315。"),
    ("桂林山水为什么那么有名？",
     "桂林是典型的喀斯特地貌，石灰岩经过亿万年的雨水溶蚀，形成了一座座拔地而起的奇峰和形态各异的溶洞。漓江从群山之间蜿蜒流过，"
     "江水清澈，倒映着两岸的山峰和竹林，景色如画，所以有“桂林山水甲天下”的说法。从桂林乘船到阳朔的漓江游是最经典的游览路线。"),
    ("冬天去哈尔滨看冰雪大世界，要注意什么？",
     "哈尔滨冬季气温常在零下20摄氏度左右，要注意：\n1. 保暖：穿羽绒服、保暖内衣，戴帽子、手套和围巾，鞋子要防滑保暖。\n"
     "2. 手机在低温下耗电很快，可以放在贴身口袋里并带上充电宝。\n3. 冰面很滑，走路要慢，小心摔倒。\n4. 室内外温差大，进出时注意适应，避免感冒。\n5. 冰雪大世界晚上灯光最美，但夜间更冷，要做好充分准备。"),
    ("坐车容易晕车，有什么办法缓解？",
     "可以试试这些方法：\n1. 尽量坐在车辆前排或者平稳的位置，坐车时看向远处的地平线。\n2. 乘车前不要吃得太饱，也不要空腹，避免油腻食物。\n"
     "3. 车上不要看手机或书。\n4. 保持车内通风，可以打开一点车窗。\n5. 容易晕车的人可以在乘车前半小时按说明服用晕车药，或者在医生指导下使用晕车贴。"),
    ("在国外旅行时护照丢了怎么办？",
     "不要慌张，可以按照以下步骤处理：\n1. 立即到当地警察局报案，并取得报案证明。\n2. 准备好护照复印件或照片、证件照，联系中国驻当地的使领馆。\n"
     "3. 向使领馆申请补发护照或办理旅行证，以便回国。\n4. 如果签证也随护照丢失，还需要向当地移民部门申请补办相关手续。\n所以出国前最好把护照首页拍照保存，并把复印件与原件分开放。"),

    # --- 其他 ---
    ("二十四节气是什么？",
     "二十四节气是中国古人根据太阳在黄道上的位置，把一年划分成的二十四个时段，用来指导农业生产和日常生活。"
     "它们依次是：立春、雨水、惊蛰、春分、清明、谷雨、立夏、小满、芒种、夏至、小暑、大暑、立秋、处暑、白露、秋分、寒露、霜降、立冬、小雪、大雪、冬至、小寒、大寒。"
     "2016年，二十四节气被列入联合国教科文组织人类非物质文化遗产代表作名录。"),
    ("中秋节为什么要吃月饼？",
     "中秋节在农历八月十五，这天的月亮又圆又亮，象征着团圆。月饼是圆形的，寓意家人团聚、生活圆满，所以人们在中秋节一家人一起赏月、吃月饼。"
     "关于吃月饼的起源，民间有多种传说，但一般认为在明清时期，中秋吃月饼已经成为普遍的习俗。"),
    ("感冒了需要吃抗生素吗？",
     "普通感冒大多是由病毒引起的，而抗生素只对细菌有效，对病毒没有作用，所以普通感冒一般不需要吃抗生素。"
     "感冒通常一周左右可以自愈，期间多休息、多喝水，症状明显时可以在医生或药师指导下对症用药。如果出现高烧不退、咳黄脓痰等可能合并细菌感染的情况，应及时就医，由医生判断是否需要使用抗生素。"),
    ("晚上总是睡不好，怎样提高睡眠质量？",
     "可以从这些方面着手：\n1. 每天固定时间睡觉和起床，周末也尽量不要打乱。\n2. 睡前一小时不看手机和电脑，屏幕的光线会影响睡意。\n"
     "3. 下午和晚上少喝咖啡、浓茶，晚餐不要吃得过饱。\n4. 保持卧室安静、黑暗，温度适宜。\n5. 白天适量运动，但睡前两小时内避免剧烈运动。\n如果长期失眠影响生活，建议去医院睡眠门诊咨询。"),
]

# Chinese idioms: (idiom, meaning, origin/story, example sentence)
ZH_IDIOMS = [
    ("画蛇添足", "比喻做了多余的事，不但没有好处，反而弄巧成拙",
     "出自《战国策·齐策二》。几个人比赛画蛇，先画好的人可以喝一壶酒。有个人最先画好，却又给蛇添上了脚，结果被别人夺走了酒，因为蛇本来没有脚",
     "这篇文章已经写得很好了，结尾再加一段说教反而是画蛇添足。"),
    ("守株待兔", "比喻死守狭隘的经验，不知道变通，也比喻妄想不劳而获",
     "出自《韩非子·五蠹》。宋国有个农夫看见一只兔子撞在树桩上死了，从此他放下农具，天天守在树桩旁等兔子，结果再也没等到，田地也荒芜了",
     "找工作要主动投简历，光在家里守株待兔是不行的。"),
    ("亡羊补牢", "比喻出了问题以后及时想办法补救，可以防止继续受损失",
     "出自《战国策·楚策四》，原文是“见兔而顾犬，未为晚也；亡羊而补牢，未为迟也”，意思是羊丢了再去修补羊圈，还不算晚",
     "这次考试没考好，现在亡羊补牢，把错题认真订正还来得及。"),
    ("掩耳盗铃", "比喻自己欺骗自己，明明掩盖不住的事情偏要设法掩盖",
     "出自《吕氏春秋·自知》。有人想偷一口钟（后来演变为“铃”），怕钟声被别人听见，就捂住自己的耳朵，以为自己听不见别人也听不见",
     "把成绩单藏起来不让父母看，简直是掩耳盗铃。"),
    ("井底之蛙", "比喻见识狭窄、眼界不开阔的人",
     "出自《庄子·秋水》。住在浅井里的青蛙向东海的大鳖夸耀自己的井有多么快乐，大鳖向它描述了大海的广阔，青蛙听后十分惊讶",
     "多出去走走看看，才不会像井底之蛙一样自以为是。"),
    ("对牛弹琴", "比喻对不懂道理的人讲道理，也用来讥笑说话不看对象",
     "出自汉代牟融的《理惑论》。古代音乐家公明仪对着牛弹奏高雅的曲子，牛照样低头吃草，并不是牛没听见，而是它听不懂",
     "跟他讨论古典音乐简直是对牛弹琴，他只对球赛感兴趣。"),
    ("卧薪尝胆", "形容人刻苦自励，发愤图强",
     "源自春秋时期越王勾践的故事。勾践被吴国打败后，为了不忘耻辱，睡在柴草上，吃饭前先尝一尝苦胆，激励自己，最终打败了吴国",
     "他创业失败后卧薪尝胆，三年后终于东山再起。"),
    ("破釜沉舟", "比喻下定决心，不留退路，一干到底",
     "出自《史记·项羽本纪》。项羽率军渡河救赵时，下令把渡船凿沉、把做饭的锅砸破，只带三天的干粮，表示决不后退，最终大败秦军",
     "这次比赛只许胜不许败，我们要有破釜沉舟的决心。"),
    ("塞翁失马", "比喻一时虽然受到损失，也许反而因此得到好处，坏事在一定条件下可以变成好事",
     "出自《淮南子·人间训》。边塞上一位老人丢了马，别人来安慰他，他却说未必是坏事；后来这匹马带着一匹好马回来了",
     "没赶上那班飞机，却在机场遇到了多年未见的老同学，真是塞翁失马，焉知非福。"),
    ("纸上谈兵", "比喻空谈理论，不能解决实际问题",
     "典出《史记·廉颇蔺相如列传》。战国时赵国的赵括熟读兵书，谈起用兵头头是道，但没有实战经验，在长平之战中被秦军打得大败",
     "做生意光看书不行，不去市场上实践，就只是纸上谈兵。"),
    ("刻舟求剑", "比喻拘泥成例，不懂得根据情况的变化而变通",
     "出自《吕氏春秋·察今》。楚国有人坐船过江，剑掉进水里，他在船边刻了个记号，等船停下后从记号处下水找剑，当然找不到",
     "市场变化这么快，还用十年前的老办法经营，无异于刻舟求剑。"),
    ("半途而废", "指事情做到一半就停下来，比喻做事不能坚持到底",
     "出自《礼记·中庸》：“君子遵道而行，半涂而废，吾弗能已矣。”“涂”同“途”",
     "学乐器贵在坚持，千万不要半途而废。"),
    ("杯弓蛇影", "比喻因疑神疑鬼而引起恐惧",
     "出自汉代应劭的《风俗通义·怪神》。有人喝酒时看见杯中好像有一条蛇，喝下后就生了病；后来才知道那是墙上挂的弓映在杯中的影子，病也就好了",
     "他总担心同事在背后议论自己，其实是杯弓蛇影，自己吓自己。"),
    ("胸有成竹", "比喻做事之前已经有了完整的计划和把握",
     "出自宋代苏轼的《文与可画筼筜谷偃竹记》。画家文与可画竹之前，心中早已有了竹子的完整形象，所以下笔从容",
     "面试前他做了充分准备，回答问题时胸有成竹。"),
    ("一鼓作气", "比喻趁劲头大的时候一下子把事情做完",
     "出自《左传·庄公十年》（即《曹刿论战》）：“夫战，勇气也。一鼓作气，再而衰，三而竭。”意思是第一次击鼓时士气最旺盛",
     "大家一鼓作气，一个上午就把仓库整理完了。"),
]
ZH_IDIOM_QUESTIONS = [
    "成语“{idiom}”是什么意思？",
    "请解释一下成语“{idiom}”。",
    "“{idiom}”这个成语出自哪里？是什么意思？",
    "能用“{idiom}”造个句吗？顺便讲讲它的意思。",
]

# Deliberate defects
ZH_EMPTY_ANSWER_QUESTION = "春节有哪些传统习俗？"
ZH_PII_QA = (
    "你们的家电上门维修怎么预约？",
    "您可以通过以下方式预约上门维修：\n1. 拨打客服热线13800138000，工作时间为每天9:00至18:00。\n"
    "2. 发送邮件至zhangsan@example.com，注明您的姓名、地址、家电型号和故障情况。\n"
    "客服确认后，维修师傅一般会在24小时内与您联系，约定上门时间。",
)
ZH_ENGLISH_QA = [
    ("What is the capital of Australia?",
     "The capital of Australia is Canberra. Many people guess Sydney or Melbourne, but Canberra was "
     "purpose-built as the capital as a compromise between those two cities."),
    ("How long should I boil dried spaghetti?",
     "Most dried spaghetti takes about 8 to 12 minutes in well-salted, rapidly boiling water. Check the "
     "package for the exact time and taste a strand a minute early: it should be tender but still "
     "slightly firm in the center (al dente)."),
    ("Why do leaves change color in autumn?",
     "As days get shorter and cooler, trees stop producing chlorophyll, the green pigment used in "
     "photosynthesis. As the chlorophyll breaks down, yellow and orange pigments that were there all "
     "along become visible, and some trees also produce red and purple pigments called anthocyanins."),
]
N_ZH_SYSTEM = 10
N_ZH_EXACT_DUPLICATES = 2


def _messages(question: str, answer: str, system: bool = False) -> dict:
    msgs = [{"role": "system", "content": ZH_SYSTEM_PROMPT}] if system else []
    msgs += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": msgs}


def build_zh(rng: random.Random) -> list[str]:
    """Return the JSONL lines (without trailing newlines) for the Chinese Q&A file."""
    pairs = list(ZH_QA)
    for k, (idiom, meaning, origin, example) in enumerate(ZH_IDIOMS):
        question = ZH_IDIOM_QUESTIONS[k % len(ZH_IDIOM_QUESTIONS)].format(idiom=idiom)
        answer = f"“{idiom}”的意思是：{meaning}。\n\n{origin}。\n\n例句：{example}"
        pairs.append((question, answer))
    rng.shuffle(pairs)

    records = [_messages(q, a, system=(k < N_ZH_SYSTEM)) for k, (q, a) in enumerate(pairs)]
    clean_plain = [r for r in records if r["messages"][0]["role"] != "system"]

    records.append(_messages(ZH_EMPTY_ANSWER_QUESTION, ""))
    records.append(_messages(*ZH_PII_QA))
    records += [_messages(q, a) for q, a in ZH_ENGLISH_QA]
    rng.shuffle(records)

    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    dup_sources = sorted((records.index(r) for r in rng.sample(clean_plain, N_ZH_EXACT_DUPLICATES)), reverse=True)
    for src in dup_sources:
        lines.insert(rng.randint(src + 1, len(lines)), lines[src])
    return lines


# =============================================================================
# Output
# =============================================================================

def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def main() -> None:
    alpaca = build_alpaca(random.Random(SEED))
    _write(DATA_DIR / "general" / "alpaca_general.json",
           json.dumps(alpaca, indent=2, ensure_ascii=False) + "\n")

    sharegpt = build_sharegpt(random.Random(SEED + 1))
    _write(DATA_DIR / "tasks" / "summarize_sharegpt.jsonl", "\n".join(sharegpt) + "\n")

    zh = build_zh(random.Random(SEED + 2))
    _write(DATA_DIR / "tasks" / "zh_qa_messages.jsonl", "\n".join(zh) + "\n")

    print(f"alpaca_general.json: {len(alpaca)} records")
    print(f"summarize_sharegpt.jsonl: {len(sharegpt)} lines")
    print(f"zh_qa_messages.jsonl: {len(zh)} lines")


if __name__ == "__main__":
    main()
