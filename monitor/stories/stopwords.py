"""Stop words per language, and a cheap guess of the language from them.

Why here and not a package: clustering only needs the few hundred function words
that carry no event information in the languages our feeds come in; the online
IDF (see ``cluster.py``) demotes everything else that is common. The lists are
accent-folded and casefolded like the tokens they filter (``text.py``).

The guess (``guess_language``) counts stop-word hits per language in the first
tokens of a text. It exists because many feeds do not declare a language, and a
union of all lists would be wrong: German ``war`` ("was") is an English event word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_RAW: dict[str, str] = {
    "en": """a about above after again against all also am an and any are aren as at be
        because been before being below between both but by can cannot could couldn did
        didn do does doesn doing don down during each few for from further had hadn has
        hasn have haven having he her here hers herself him himself his how i if in into
        is isn it its itself just let ll me more most mustn my myself no nor not now of
        off on once only or other ought our ours ourselves out over own re s same shan she
        should shouldn so some such t than that the their theirs them themselves then
        there these they this those through to too under until up us ve very was wasn we
        were weren what when where which while who whom why will with won would wouldn
        you your yours yourself yourselves said says say told tell according also one two
        new would could may might must shall will last first year years week day days
        time times its it's mr mrs ms per via yet still even well back like get got made
        make many much according around since however including another""",
    "de": """aber alle allem allen aller alles als also am an ander andere anderem anderen
        anderer anderes anderm andern anderr anders auch auf aus bei bin bis bist da damit
        dann das dass dasselbe dazu dein deine deinem deinen deiner deines dem demselben
        den denn denselben der derer derselbe derselben des desselben dessen dich die dies
        diese dieselbe dieselben diesem diesen dieser dieses dir doch dort du durch ein
        eine einem einen einer eines einig einige einigem einigen einiger einiges einmal
        er es etwas euch euer eure eurem euren eurer eures fur gegen gewesen hab habe
        haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre ihrem ihren
        ihrer ihres im in indem ins ist jede jedem jeden jeder jedes jene jenem jenen
        jener jenes jetzt kann kein keine keinem keinen keiner keines konnen konnte
        machen man manche manchem manchen mancher manches mein meine meinem meinen meiner
        meines mich mir mit muss musste nach nicht nichts noch nun nur ob oder ohne sehr
        sein seine seinem seinen seiner seines selbst sich sie sind so solche solchem
        solchen solcher solches soll sollte sondern sonst uber um und uns unsere unserem
        unseren unser unseres unter viel vom von vor wahrend war waren warst was weg weil
        weiter welche welchem welchen welcher welches wenn werde werden wie wieder will
        wir wird wirst wo wollen wollte wurde wurden zu zum zur zwar zwischen sagte
        laut jahr jahre heute""",
    "fr": """a au aux avec ce ces dans de des du elle en et eux il ils je la le les leur
        lui ma mais me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui sa
        se ses son sur ta te tes toi ton tu un une vos votre vous c d j l m n s t y ete
        etee etees etes etant suis es est sommes sont serai sera serons seront serais
        serait etais etait etions etaient fus fut furent ai as avons avez ont aurai aura
        aurons auront aurais aurait avais avait avions avaient eu eue eus eut eurent
        cette cet aussi plus tres tout tous toute toutes apres avant selon sans sous entre
        contre depuis dont ainsi alors comme si lors deux an ans annee jour jours""",
    "es": """de la que el en y a los del se las por un para con no una su al lo como mas
        pero sus le ya o este si porque esta entre cuando muy sin sobre tambien me hasta
        hay donde quien desde todo nos durante todos uno les ni contra otros ese eso ante
        ellos e esto mi antes algunos que unos yo otro otras otra el tanto esa estos mucho
        quienes nada muchos cual poco ella estar estas algunas algo nosotros fue ha han
        ser es son era eran sido segun dijo ano anos dia dias""",
    "it": """ad al allo ai agli all agl alla alle con col coi da dal dallo dai dagli dall
        dagl dalla dalle di del dello dei degli dell degl della delle in nel nello nei
        negli nell negl nella nelle su sul sullo sui sugli sull sugl sulla sulle per tra
        contro io tu lui lei noi voi loro mio mia miei mie tuo tua tuoi tue suo sua suoi
        sue nostro nostra nostri nostre vostro vostra vostri vostre mi ti ci vi lo la li
        le gli ne il un uno una ma ed se perche anche come dov dove che chi cui non piu
        quale quanto quanti quanta quante quello quelli quella quelle questo questi questa
        queste si tutto tutti a c e i l o ha hanno e era sono stato stata essere ha
        secondo anno anni""",
    "nl": """de en van ik te dat die in een hij het niet zijn is was op aan met als voor
        had er maar om hem dan zou of wat mijn men dit zo door over ze zich bij ook tot je
        mij uit der daar haar naar heb hoe heeft hebben deze u want nog zal me zij nu ge
        geen omdat iets worden toch al waren veel meer doen toen moet ben zonder kan hun
        dus alles onder ja eens hier wie werd altijd doch wordt wezen kunnen ons zelf tegen
        na reeds wil kon niets uw iemand geweest andere jaar""",
    "pt": """de a o que e do da em um para com nao uma os no se na por mais as dos como mas
        ao ele das a seu sua ou quando muito nos ja eu tambem so pelo pela ate isso ela
        entre depois sem mesmo aos seus quem nas me esse eles voce essa num nem suas meu
        minha numa pelos elas qual lhe deles essas esses pelas este dele tu te voces vos
        lhes meus minhas teu tua nosso nossa nossos nossas dela delas esta estes estas
        aquele aquela aquilo foi ser sao era segundo ano anos""",
    "sv": """och det att i en jag hon som han pa den med var sig for sa till ar men ett om
        hade de av icke mig du henne da sin nu har inte hans honom skulle hennes dar min
        man ej vid kunde nagot fran ut nar efter upp vi dem vara vad over an dig kan sina
        har ha mot alla under nagon eller allt mycket sedan ju denna sjalv detta at utan
        varit hur ingen mitt ni bli blev oss din dessa nagra deras blir mina samma vilken
        er sadan var blivit dess inom mellan sadant varfor varje vilka ditt vem vilket
        sitta sadana vart dina vars vart vara vart vilkas enligt sager sade ocksa""",
    "ru": """и в во не что он на я с со как а то все она так его но да ты к у же вы за бы
        по только ее мне было вот от меня еще нет о из ему теперь когда даже ну вдруг ли
        если уже или ни быть был него до вас нибудь опять уж вам ведь там потом себя ничего
        ей может они тут где есть надо ней для мы тебя их чем была сам чтоб без будто чего
        раз тоже себе под будет ж тогда кто этот того потому этого какой совсем ним здесь
        этом один почти мой тем чтобы нее сейчас были куда зачем всех никогда можно при
        наконец два об другой хоть после над больше тот через эти нас про всего них какая
        много разве три эту моя впрочем хорошо свою этой перед иногда лучше чуть том нельзя
        такой им более всегда конечно всю между это также заявил году года""",
    "uk": """і й та в у на з із зі до від по за про для що як але не ні так то це цей ця ці
        той та ті він вона воно вони ми ви я ти його її їх їм нам вам мені тобі був була було
        були бути є буде може також вже ще лише тільки коли якщо або чи де там тут після
        перед через під над між без при року році""",
    "pl": """i w z na do nie sie to ze jest o a od po jak co tak za przez dla tez jego jej
        ich byl byla bylo byly sa ale lub czy juz tylko przy pod nad bez przed miedzy
        oraz ten ta te tym tego tej tych ktory ktora ktore ktorych jako jednak roku""",
}

_COMBINING = re.compile(r"[\u0300-\u036f]")


def fold(text: str) -> str:
    """Accents off (``Glavaš`` -> ``Glavas``, ``мой`` -> ``мои``), case kept; ASCII as is.

    Here rather than in ``text.py``, which folds every token with it, so that the lists
    below are folded by the very same rule as the tokens they are compared with.
    """
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


STOP_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(map(fold, words.split())) for lang, words in _RAW.items()
}
LANGUAGES: tuple[str, ...] = tuple(STOP_WORDS)


def stop_words_for(language: str | None) -> frozenset[str] | None:
    """The list for a declared language (``en-GB`` -> ``en``); None when we have none."""
    if not language:
        return None
    return STOP_WORDS.get(language.strip().lower()[:2])


def guess_language(tokens: Iterable[str], *, sample: int = 80) -> str:
    """The language whose stop words cover most of the first ``sample`` tokens (``en`` on a tie)."""
    hits = dict.fromkeys(LANGUAGES, 0)
    for n, tok in enumerate(tokens):
        if n >= sample:
            break
        for lang, words in STOP_WORDS.items():
            if tok in words:
                hits[lang] += 1
    best = max(LANGUAGES, key=lambda lang: (hits[lang], lang == "en"))
    return best
